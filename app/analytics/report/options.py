"""What a report covers: the window, filters, budgets and the month to forecast; how to parse them.

Windows are `[since, until)`. Days the window or *now* cuts are partial and marked so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import pandas as pd

from app.analytics import load, projection


def parse_moment(text: str) -> datetime:
    """`YYYY-MM-DD` (midnight UTC) or an ISO 8601 date-time (naive means UTC)."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_month(text: str) -> date:
    """`YYYY-MM` as the 1st of that month."""
    return datetime.strptime(text, "%Y-%m").date()


def default_window(
    since: datetime | None = None, until: datetime | None = None, days: int = 30
) -> tuple[datetime, datetime]:
    """Fill in a window: `until` defaults to tomorrow 00:00 UTC (today included), `since` to
    `days` before `until`."""
    end = until or datetime.combine(datetime.now(UTC).date() + timedelta(days=1), time(), UTC)
    return since or end - timedelta(days=days), end


@dataclass(frozen=True)
class ReportOptions:
    since: datetime
    until: datetime
    user_id: str | None = None
    user_email: str | None = None  # the one user's email, for titles (else looked up)
    model: str | None = None
    month: date | None = None  # the month to project (None: the last complete day's)
    daily_budget: Decimal | None = None
    monthly_budget: Decimal | None = None
    top_n: int = 20
    # Provider-reported and table cost differing by more than this (USD) flag a turn.
    cost_tolerance: Decimal = Decimal("0.000001")
    now: datetime | None = None  # None: the clock (days after now are not over yet)

    @property
    def window(self) -> load.Window:
        return load.Window(self.since, self.until, self.user_id, self.model)

    @property
    def as_of(self) -> date:
        """The window's last UTC day (the day holding the instant just before `until`)."""
        return (self.until.astimezone(UTC) - timedelta(microseconds=1)).date()

    def observed_days(self, since: datetime | None = None) -> pd.DatetimeIndex:
        """The UTC days from `since` (default: the window's start) to the window's last day,
        cut at now: the days a table of days has a row for (0 where nothing was spent)."""
        end = self.coverage.end
        first = (since or self.since).astimezone(UTC).date()
        if end <= (since or self.since):
            return pd.DatetimeIndex([], name="day")
        last = min(self.as_of, (end.astimezone(UTC) - timedelta(microseconds=1)).date())
        return pd.date_range(pd.Timestamp(first), pd.Timestamp(last), freq="D", name="day")

    @property
    def coverage(self) -> projection.Coverage:
        """What the window's data covers: `[since, until)` cut at now."""
        return projection.coverage(self.since, self.until, self.now)
