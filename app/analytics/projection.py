"""Month-end projections that an anomaly, a partial day or a short history cannot drive.

The method (one place; `tests/analytics/test_projection.py` pins it on constructed data):

1. **The month.** The month asked for (`--month`), else the month holding the window's last
   *complete* day (so a window ending today projects this month only once a day of it is over).
2. **Complete and partial days.** The data covers `[coverage_start, coverage_end)`: the report
   loads from the month's 1st (or the window start if earlier) to the window end, cut at *now*
   (a day still running is not over). A UTC day is complete when that range holds all 24 hours
   of it, partial when it holds part of it, unobserved otherwise. Tables and charts mark partial
   days (`partial` column, hatched bars).
3. **Not enough data.** With fewer than `MIN_COMPLETE_DAYS` (3) complete days of the month
   there is no projection: `projected_month_usd` is empty and `basis` says "not enough data".
4. **A robust daily rate.** The trimmed mean of the daily cost over the month's complete days
   (days without usage count as $0): the `ceil(10 %)` highest and lowest days are dropped
   (one each for 3 to 10 days), so a single runaway day does not drive the rate; with 3 days it
   is the median. Exact `Decimal`, rounded half-up to 8 places.
5. **The projection.** Month-end = the actual cost of the complete days + for each partial day
   the larger of its actual cost and the rate + the rate x every unobserved day of the month
   (the days still ahead). It is never below the month-to-date spend.
6. **A range, not one line.** `low_usd` and `high_usd` project the days still ahead at the
   25th and 75th percentile of the complete days' cost instead of the rate (partial days at
   the larger of their actual cost and that rate), widened to hold the projection itself.
7. **A finished month is actual.** When every day of the month is complete, there is nothing
   to forecast: `projected_month_usd`, `low_usd` and `high_usd` are the month's actual total
   and `basis` starts with "actual".
8. **Per user and app-wide.** Per user on that user's days; app-wide on the daily totals of
   everyone (its own trimmed mean, not the sum of the users' rates, so a heavy user's spike is
   trimmed too).
"""

from __future__ import annotations

import calendar
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal

import pandas as pd

MIN_COMPLETE_DAYS = 3
TRIM_SHARE = 0.10
_EIGHT = Decimal("0.00000001")
ZERO = Decimal(0)
COLUMNS = [
    "user_id", "month", "complete_days", "partial_days", "mtd_usd", "daily_rate_usd",
    "projected_month_usd", "low_usd", "high_usd", "basis",
]  # fmt: skip
RANGE = (0.25, 0.75)  # the percentiles of a complete day's cost the range is drawn from
ACTUAL = "actual"  # how `basis` starts for a month that is over


@dataclass(frozen=True)
class Coverage:
    """The half-open time range the loaded user-days cover."""

    start: datetime
    end: datetime

    def day_kind(self, day: date) -> str:
        """ "complete", "partial" or "unobserved" (see the module docstring)."""
        begin = datetime.combine(day, time(), UTC)
        finish = begin + timedelta(days=1)
        if self.start <= begin and finish <= self.end:
            return "complete"
        if self.start < finish and begin < self.end:
            return "partial"
        return "unobserved"


def coverage(start: datetime, end: datetime, now: datetime | None = None) -> Coverage:
    """The data range `[start, min(end, now))`: a day still running is not complete."""
    current = now or datetime.now(UTC)
    return Coverage(start, min(end, current))


def partial_days(days: pd.Series, cover: Coverage) -> pd.Series:
    """True for the days (datetime64 at midnight) the coverage holds only part of."""
    return days.map(lambda d: cover.day_kind(pd.Timestamp(d).date()) == "partial").astype(bool)


def projection_month(cover: Coverage, month: date | None = None) -> date:
    """The 1st of the month to project: `month`, else the month of the last complete day."""
    if month is not None:
        return month.replace(day=1)
    last_instant = cover.end - timedelta(microseconds=1)
    last = last_instant.astimezone(UTC).date()
    if cover.day_kind(last) != "complete":
        last -= timedelta(days=1)
    return last.replace(day=1)


def trimmed_mean(values: list[Decimal]) -> Decimal:
    """Mean after dropping the ceil(10 %) highest and lowest values (see the docstring)."""
    ordered = sorted(values)
    cut = math.ceil(len(ordered) * TRIM_SHARE)
    kept = ordered[cut : len(ordered) - cut] if len(ordered) > 2 * cut else ordered
    return (sum(kept, ZERO) / len(kept)).quantize(_EIGHT, rounding=ROUND_HALF_UP)


def quantile(values: list[Decimal], q: float) -> Decimal:
    """The `q` quantile of `values` by linear interpolation (numpy's default), exact `Decimal`."""
    ordered = sorted(values)
    position = Decimal(str(q)) * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    value = ordered[low] + (ordered[high] - ordered[low]) * (position - low)
    return value.quantize(_EIGHT, rounding=ROUND_HALF_UP)


Projected = tuple[int, int, Decimal, Decimal | None, Decimal | None, Decimal | None,
                  Decimal | None, str]  # fmt: skip


def _project(daily: dict[date, Decimal], first: date, cover: Coverage) -> Projected:
    days_in_month = calendar.monthrange(first.year, first.month)[1]
    month_days = [first + timedelta(days=i) for i in range(days_in_month)]
    kinds = {d: cover.day_kind(d) for d in month_days}
    complete = [d for d in month_days if kinds[d] == "complete"]
    partial = [d for d in month_days if kinds[d] == "partial"]
    mtd = sum((daily.get(d, ZERO) for d in complete + partial), ZERO)
    if len(complete) < MIN_COMPLETE_DAYS:
        basis = (
            f"not enough data: {len(complete)} complete day(s) in {first:%B %Y}, "
            f"need {MIN_COMPLETE_DAYS}"
        )
        return len(complete), len(partial), mtd, None, None, None, None, basis
    costs = [daily.get(d, ZERO) for d in complete]
    rate = trimmed_mean(costs)
    if len(complete) == days_in_month:
        basis = f"{ACTUAL}: every day of {first:%B %Y} is over"
        return len(complete), 0, mtd, rate, mtd, mtd, mtd, basis
    unobserved = days_in_month - len(complete) - len(partial)
    done = sum(costs, ZERO)

    def path(day_rate: Decimal) -> Decimal:
        ahead = sum((max(daily.get(d, ZERO), day_rate) for d in partial), ZERO)
        return done + ahead + day_rate * unobserved

    projected = path(rate)
    low = min(path(quantile(costs, RANGE[0])), projected)
    high = max(path(quantile(costs, RANGE[1])), projected)
    basis = f"trimmed mean of {len(complete)} complete days"
    return len(complete), len(partial), mtd, rate, projected, low, high, basis


def _row(key: str, daily: dict[date, Decimal], first: date, cover: Coverage) -> list[object]:
    return [key, pd.Timestamp(first), *_project(daily, first, cover)]


def month_projection(
    user_days: pd.DataFrame, cover: Coverage, month: date | None = None
) -> pd.DataFrame:
    """Per user: month-to-date, robust daily rate and projected month end (exact `Decimal`).

    `user_days` has `user_id`, `day` (datetime64 at midnight UTC) and `cost_usd` (Decimal).
    Users with usage in the month, highest projection first (no projection last).
    """
    first = projection_month(cover, month)
    days = user_days["day"].dt.date
    mine = user_days[(days >= first) & (days < _next_month(first))]
    rows = []
    for user, group in mine.groupby("user_id", sort=True):
        daily = dict(zip(group["day"].dt.date, group["cost_usd"], strict=True))
        rows.append(_row(str(user), daily, first, cover))
    table = pd.DataFrame(rows, columns=COLUMNS)
    order = table["projected_month_usd"].map(lambda v: -1 if v is None else v).astype(float)
    return (
        table.assign(_order=order)
        .sort_values(["_order", "user_id"], ascending=[False, True])
        .drop(columns="_order")
        .reset_index(drop=True)
    )


def app_projection(
    user_days: pd.DataFrame, cover: Coverage, month: date | None = None
) -> pd.DataFrame:
    """The whole app as one row (`user_id` "all users"), on the daily totals of everyone."""
    first = projection_month(cover, month)
    days = user_days["day"].dt.date
    mine = user_days[(days >= first) & (days < _next_month(first))]
    daily: dict[date, Decimal] = {}
    for day, cost in zip(mine["day"].dt.date, mine["cost_usd"], strict=True):
        daily[day] = daily.get(day, ZERO) + cost
    return pd.DataFrame([_row("all users", daily, first, cover)], columns=COLUMNS)


def _next_month(first: date) -> date:
    return (first.replace(day=28) + timedelta(days=4)).replace(day=1)
