"""Typed frames of the aggregate SQL functions, for a `Window`, from any `app.analytics.sources`.

Heavy lifting happens in PostgreSQL (`supabase/migrations/*_analytics.sql`): a source only calls
`public.usage_per_user`, `usage_per_day_model`, `usage_per_day_status`, `cost_per_conversation`
or `usage_user_days` for a `Window` and turns the rows into a typed DataFrame. Those per user,
day, model and status read the daily rollup `public.usage_daily` for whole UTC days (and raw
rows only for a window's partial edge days); per-conversation ones read raw rows. The sources
(psycopg or Supabase's API) are in `app.analytics.sources`.

Typed columns: ids and text are strings, counts `int64`, money `float64` (ready for pandas:
`load_per_day_model(source, window).plot(x="day", y="cost_usd")`), timestamps `datetime64[UTC]`,
days `datetime64` at midnight (UTC days). `exact=True` keeps money as `Decimal` objects, exact
to the last of its 8 places, for totals and reconciliation (the report computes on those).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import pandas as pd

from app.analytics.money import to_float
from app.analytics.sources import Aggregate, Kind, Source, SourceError, TableMissing


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
