"""Where analytics data comes from: the aggregate SQL functions, over psycopg or Supabase's API.

Heavy lifting happens in PostgreSQL (`supabase/migrations/*_analytics.sql`): a source only calls
`public.usage_per_user`, `usage_per_day_model`, `usage_per_day_status`, `cost_per_conversation`
or `usage_user_days` for a `Window` and turns the rows into a typed DataFrame. Those per user,
day, model and status read the daily rollup `public.usage_daily` for whole UTC days (and raw
rows only for a window's partial edge days); per-conversation ones read raw rows. Two sources:

- `PostgresSource(dsn)`: psycopg, one query per aggregate. Money arrives as `Decimal`.
- `SupabaseSource(url, service_key)`: supabase-py `.rpc()` through PostgREST. Money is selected
  as `cost_usd::text` (JSON numbers would be parsed as floats) and read back as `Decimal`.
  PostgREST caps every response at the project's `max_rows` (1000 on Supabase by default), so
  results are fetched in pages of aggregate rows, ordered by their key, until the exact count
  the first page reported has arrived. Usage rows themselves never cross the network.

Typed columns: ids and text are strings, counts `int64`, money `float64` (ready for pandas:
`load_per_day_model(source, window).plot(x="day", y="cost_usd")`), timestamps `datetime64[UTC]`,
days `datetime64` at midnight (UTC days). `exact=True` keeps money as `Decimal` objects, exact
to the last of its 8 places, for totals and reconciliation (the report computes on those).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal, Protocol

import httpx
import pandas as pd
import psycopg
from postgrest import APIError
from postgrest.types import CountMethod
from psycopg import sql
from psycopg.rows import dict_row

from app.analytics.money import to_float
from supabase import ClientOptions, create_client

Kind = Literal["id", "text", "count", "money", "timestamp", "day"]


@dataclass(frozen=True)
class Window:
    """Half-open time window `[since, until)` (None: unbounded), optionally one user and/or
    one model only."""

    since: datetime | None = None
    until: datetime | None = None
    user_id: str | None = None
    model: str | None = None

    def __post_init__(self) -> None:
        for bound in (self.since, self.until):
            if bound is not None and bound.tzinfo is None:
                raise ValueError("window bounds must be timezone-aware")
        if self.since and self.until and self.since >= self.until:
            raise ValueError("since must be before until")

    def params(self) -> dict[str, str | None]:
        """The SQL functions' named arguments, JSON-ready."""
        return {
            "p_since": self.since.isoformat() if self.since else None,
            "p_until": self.until.isoformat() if self.until else None,
            "p_user_id": self.user_id,
            "p_model": self.model,
        }


@dataclass(frozen=True)
class Aggregate:
    """An aggregate SQL function (or a small table): typed columns and a unique key to page by."""

    function: str  # the function's name, or the table's when `table`
    columns: Mapping[str, Kind]
    key: tuple[str, ...]
    table: bool = False


_TOKENS: dict[str, Kind] = {
    "requests": "count",
    "tokens_in": "count",
    "tokens_out": "count",
}
_CACHE: dict[str, Kind] = {"cache_read_tokens": "count", "cache_write_tokens": "count"}

PER_USER = Aggregate(
    "usage_per_user",
    {"user_id": "id", "email": "text", **_TOKENS, **_CACHE, "cost_usd": "money",
     "partial_requests": "count", "error_requests": "count", "estimated_requests": "count",
     "first_active": "timestamp", "last_active": "timestamp"},
    ("user_id",),
)  # fmt: skip
PER_DAY_MODEL = Aggregate(
    "usage_per_day_model",
    {"day": "day", "provider": "text", "model": "text", **_TOKENS, **_CACHE, "cost_usd": "money"},
    ("day", "provider", "model"),
)  # fmt: skip
PER_CONVERSATION = Aggregate(
    "cost_per_conversation",
    {"conversation_id": "id", "user_id": "id", **_TOKENS, **_CACHE, "cost_usd": "money",
     "first_at": "timestamp", "last_at": "timestamp"},
    ("conversation_id", "user_id"),
)  # fmt: skip
CONVERSATION_SUMMARY = Aggregate(
    "conversation_cost_summary",
    {"conversations": "count", "requests": "count", "cost_usd": "money", "mean_usd": "money",
     "p50_usd": "money", "p90_usd": "money", "p99_usd": "money", "max_usd": "money"},
    ("conversations",),
)  # fmt: skip
USER_DAYS = Aggregate(
    "usage_user_days",
    {"user_id": "id", "day": "day", **_TOKENS, "cost_usd": "money"},
    ("user_id", "day"),
)

PER_DAY_STATUS = Aggregate(
    "usage_per_day_status",
    {"day": "day", "status": "text", **_TOKENS, "cost_usd": "money",
     "estimated_requests": "count"},
    ("day", "status"),
)  # fmt: skip
USER_BY_EMAIL = Aggregate("user_by_email", {"user_id": "id", "email": "text"}, ("user_id",))

# Per-user budget overrides of the guards (docs/design.md §13): null = the default, 0 = no cap.
BUDGET_LIMITS = Aggregate(
    "user_limits",
    {"user_id": "id", "daily_budget_usd": "money", "monthly_budget_usd": "money"},
    ("user_id",),
    table=True,
)


class SourceError(RuntimeError):
    """The analytics source refused or failed a query."""


class SourceUnreachable(SourceError):
    """No connection to the database or the Supabase API."""


class FunctionsMissing(SourceError):
    """The aggregate functions are not there: apply supabase/migrations first."""


class TableMissing(SourceError):
    """A table read by name does not exist in this database."""


Args = Mapping[str, object]  # the function's named arguments (JSON-ready values)


class Source(Protocol):
    def rows(self, aggregate: Aggregate, args: Args) -> list[dict[str, Any]]:
        """All rows of one aggregate function called with `args` (or of a table), by column."""
        ...


class PostgresSource:
    """A PostgreSQL DSN: as `postgres`/service role every user is seen; as a user, RLS applies."""

    def __init__(self, dsn: str, *, connect_timeout: int = 5) -> None:
        self.dsn = dsn
        self.connect_timeout = connect_timeout

    def __repr__(self) -> str:  # never show the password
        return "PostgresSource(<dsn>)"

    def rows(self, aggregate: Aggregate, args: Args) -> list[dict[str, Any]]:
        call = sql.SQL("{}({})").format(
            sql.Identifier(aggregate.function),
            sql.SQL(", ").join(
                sql.SQL("{} => {}").format(sql.Identifier(name), sql.Placeholder(name))
                for name in args
            ),
        )
        query = sql.SQL("select {} from public.{} order by {}").format(
            sql.SQL(", ").join(sql.Identifier(c) for c in aggregate.columns),
            sql.Identifier(aggregate.function) if aggregate.table else call,
            sql.SQL(", ").join(sql.Identifier(c) for c in aggregate.key),
        )
        with (
            _translate_psycopg(),
            psycopg.connect(
                self.dsn, connect_timeout=self.connect_timeout, row_factory=dict_row
            ) as conn,
        ):
            return conn.execute(query, dict(args)).fetchall()


@contextlib.contextmanager
def _translate_psycopg() -> Iterator[None]:
    try:
        yield
    except psycopg.errors.UndefinedFunction as exc:
        raise FunctionsMissing(_MISSING) from exc
    except psycopg.errors.UndefinedTable as exc:
        raise TableMissing(str(exc)) from exc
    except psycopg.OperationalError as exc:
        raise SourceUnreachable(f"cannot reach the database: {exc}".strip()) from exc
    except psycopg.Error as exc:
        raise SourceError(f"the database refused the query: {exc}".strip()) from exc


_MISSING = "the analytics SQL functions are missing: apply supabase/migrations to this database"


class SupabaseSource:
    """A Supabase project (or the local stand-in) through PostgREST, with the service role key."""

    def __init__(
        self, url: str, service_key: str, *, page_size: int = 10_000, timeout: float = 120.0
    ) -> None:
        self._http = httpx.Client(timeout=httpx.Timeout(timeout, connect=5.0))
        options = ClientOptions(
            auto_refresh_token=False, persist_session=False, httpx_client=self._http
        )
        self._client = create_client(url, service_key, options)
        self.page_size = page_size

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SupabaseSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return "SupabaseSource(<url>)"

    def rows(self, aggregate: Aggregate, args: Args) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        total: int | None = None
        while total is None or len(rows) < total:
            page, count = self._page(aggregate, args, len(rows), first=total is None)
            if total is None:
                total = count if count is not None else len(page)
            if not page and len(rows) < total:
                raise SourceError(f"{aggregate.function} changed while it was being paged")
            rows.extend(page)
        return rows

    def _page(
        self, aggregate: Aggregate, args: Args, offset: int, *, first: bool
    ) -> tuple[list[dict[str, Any]], int | None]:
        """Rows from `offset` in key order (the server may cap them at `max_rows`); the first
        page also asks for the exact total."""
        select = ",".join(
            f"{name}::text" if kind == "money" else name for name, kind in aggregate.columns.items()
        )
        count = CountMethod.exact if first else None
        end = offset + self.page_size - 1
        with _translate_http():
            if aggregate.table:
                query = self._client.table(aggregate.function).select(select, count=count)
                for column in aggregate.key:
                    query = query.order(column)
                response = query.range(offset, end).execute()
            else:
                call = self._client.rpc(aggregate.function, dict(args), count=count).select(select)
                for column in aggregate.key:
                    call = call.order(column)
                response = call.range(offset, end).execute()
        data = response.data or []
        page = [row for row in data if isinstance(row, dict)] if isinstance(data, list) else []
        if not isinstance(data, list) or len(page) != len(data):
            raise SourceError(f"{aggregate.function} did not answer with rows")
        return page, response.count


@contextlib.contextmanager
def _translate_http() -> Iterator[None]:
    try:
        yield
    except APIError as exc:
        if exc.code in ("PGRST202", "42883"):
            raise FunctionsMissing(_MISSING) from exc
        if exc.code in ("PGRST205", "42P01"):
            raise TableMissing(f"{exc.code} {exc.message}") from exc
        raise SourceError(f"the API refused the query: {exc.code} {exc.message}") from exc
    except httpx.HTTPError as exc:
        raise SourceUnreachable(f"cannot reach the Supabase API: {exc}") from exc


# --- typed frames --------------------------------------------------------------------------------
def _money(value: object) -> Decimal | None:
    """Exact money from psycopg (Decimal) or PostgREST (text); None stays None (e.g. no mean)."""
    if value is None or isinstance(value, Decimal):
        return value
    return Decimal(str(value))


def to_frame(aggregate: Aggregate, rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows of an aggregate as a DataFrame with the column types in the module docstring."""
    frame = pd.DataFrame(rows, columns=list(aggregate.columns))
    for name, kind in aggregate.columns.items():
        column = frame[name]
        if kind == "count":
            frame[name] = column.astype("int64")
        elif kind == "money":
            frame[name] = pd.Series([_money(v) for v in column], index=frame.index, dtype=object)
        elif kind == "timestamp":
            frame[name] = pd.to_datetime(column, utc=True, format="ISO8601")
        elif kind == "day":
            frame[name] = pd.to_datetime(column.astype(str), format="%Y-%m-%d")
        else:  # ids arrive as UUID objects from psycopg, as strings over HTTP
            frame[name] = pd.Series(
                [None if v is None else str(v) for v in column], index=frame.index, dtype="str"
            )
    return frame


def _shaped(frame: pd.DataFrame, exact: bool) -> pd.DataFrame:
    return frame if exact else to_float(frame)


def load(
    source: Source, aggregate: Aggregate, window: Window, *, exact: bool = False, **extra: object
) -> pd.DataFrame:
    """One aggregate over a window (plus any extra named arguments) as a typed DataFrame."""
    args = window.params() | {f"p_{name}": value for name, value in extra.items()}
    return _shaped(to_frame(aggregate, source.rows(aggregate, args)), exact)


def load_per_user(source: Source, window: Window, *, exact: bool = False) -> pd.DataFrame:
    return load(source, PER_USER, window, exact=exact)


def load_per_day_model(source: Source, window: Window, *, exact: bool = False) -> pd.DataFrame:
    return load(source, PER_DAY_MODEL, window, exact=exact)


def load_top_conversations(
    source: Source, window: Window, limit: int = 20, *, exact: bool = False
) -> pd.DataFrame:
    """The `limit` most expensive conversations, most expensive first."""
    top = load(source, PER_CONVERSATION, window, exact=True, limit=limit)
    ordered = top.sort_values(["cost_usd", "conversation_id"], ascending=[False, True])
    return _shaped(ordered, exact)


def load_conversation_summary(
    source: Source, window: Window, *, exact: bool = False
) -> pd.DataFrame:
    """One row: conversations, requests, total, mean and percentiles of cost per conversation."""
    return load(source, CONVERSATION_SUMMARY, window, exact=exact)


def load_user_days(source: Source, window: Window, *, exact: bool = False) -> pd.DataFrame:
    return load(source, USER_DAYS, window, exact=exact)


def load_per_day_status(source: Source, window: Window, *, exact: bool = False) -> pd.DataFrame:
    """Per UTC day and outcome (`status`): requests, tokens, cost."""
    return load(source, PER_DAY_STATUS, window, exact=exact)


class UnknownUser(SourceError):
    """No user has that email (or the caller may not see them)."""


def resolve_user(source: Source, text: str) -> str:
    """A user id from an id (UUID, returned as is) or an email address (looked up)."""
    try:
        return str(uuid.UUID(text))
    except ValueError:
        pass
    found = to_frame(USER_BY_EMAIL, source.rows(USER_BY_EMAIL, {"p_email": text.strip()}))
    if found.empty:
        raise UnknownUser(f"no user with the email {text!r}")
    return str(found["user_id"].iloc[0])


def load_budget_limits(
    source: Source, user_id: str | None = None, *, exact: bool = False
) -> pd.DataFrame:
    """Per-user budget overrides (`public.user_limits`); none when that table is absent.

    The table belongs to the service's guards migration; a project without it simply has no
    overrides, so the report falls back to the default budgets.
    """
    try:
        limits = to_frame(BUDGET_LIMITS, source.rows(BUDGET_LIMITS, {}))
    except TableMissing:
        limits = to_frame(BUDGET_LIMITS, [])
    if user_id is not None:
        limits = limits[limits["user_id"] == user_id].reset_index(drop=True)
    return _shaped(limits, exact)
