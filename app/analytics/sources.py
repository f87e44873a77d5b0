"""Where analytics rows come from: the aggregate SQL functions, over psycopg or Supabase's API.

A source calls one aggregate function (or reads a small table) and returns its rows by column;
`app.analytics.load` turns them into typed frames. Two sources:

- `PostgresSource(dsn)`: psycopg, one query per aggregate. Money arrives as `Decimal`.
- `SupabaseSource(url, service_key)`: supabase-py `.rpc()` through PostgREST. Money is selected
  as `cost_usd::text` (JSON numbers would be parsed as floats) and read back as `Decimal`.
  PostgREST caps every response at the project's `max_rows` (1000 on Supabase by default), so
  results are fetched in pages of aggregate rows, ordered by their key, until the exact count
  the first page reported has arrived. Usage rows themselves never cross the network.

Each source translates its driver's errors into `SourceError`s here, and nothing else does.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import httpx
import psycopg
from postgrest import APIError
from postgrest.types import CountMethod
from psycopg import sql
from psycopg.rows import dict_row

from supabase import ClientOptions, create_client

Kind = Literal["id", "text", "count", "money", "timestamp", "day"]


@dataclass(frozen=True)
class Aggregate:
    """An aggregate SQL function (or a small table): typed columns and a unique key to page by."""

    function: str  # the function's name, or the table's when `table`
    columns: Mapping[str, Kind]
    key: tuple[str, ...]
    table: bool = False


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
