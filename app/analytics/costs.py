"""Cost answers shaped from the aggregate frames of `app.analytics.load`. Pure pandas, no I/O.

Money stays `Decimal` (object columns) here: sums are exact, derived amounts (averages) are
rounded half-up to 8 places like `numeric(14,8)`. Shares and robust z-scores are statistics,
not money, and are floats. The report turns these exact tables into float frames for pandas
(the rule is in `app.analytics.money`).

Month-end projections live in `app.analytics.projection`.

Anomalies (`anomalies`): a user-day whose cost is far above that user's own baseline. The
baseline is the user's active days in the frame (days with at least one request). The robust
z-score of a day is 0.6745 x (cost - median) / MAD (Iglewicz and Hoaglin's modified z-score;
MAD = median absolute deviation from the median). When MAD is 0 (most days cost the same) the
mean absolute deviation is used instead, z = (cost - median) / (1.253314 x meanAD). A day is
flagged when z > `threshold` (3.5 by default), the user has at least `min_active_days` active
days, and the day cost at least `min_cost_usd` (tiny amounts are never worth an alert).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pandas as pd

EIGHT_PLACES = Decimal("0.00000001")
ZERO = Decimal(0)
TOKEN_COLUMNS = ("tokens_in", "tokens_out", "cache_read_tokens", "cache_write_tokens")
BUDGET_LIMIT_COLUMNS = ("user_id", "daily_budget_usd", "monthly_budget_usd")


def money_sum(values: Iterable[Decimal]) -> Decimal:
    """Exact sum of a money column (0 when empty)."""
    return sum(values, ZERO)


def _round(amount: Decimal) -> Decimal:
    return amount.quantize(EIGHT_PLACES, rounding=ROUND_HALF_UP)


def _divide(amount: Decimal, by: int | Decimal) -> Decimal:
    return _round(amount / by) if by else ZERO


def _money(values: Iterable[Decimal], index: pd.Index) -> pd.Series:
    return pd.Series(list(values), index=index, dtype=object)


def _by_cost(frame: pd.DataFrame, key: str) -> pd.DataFrame:
    """Most expensive first; ties by `key` so the order is stable."""
    return frame.sort_values(["cost_usd", key], ascending=[False, True], ignore_index=True)


# --- per user ------------------------------------------------------------------------------------
def user_table(per_user: pd.DataFrame) -> pd.DataFrame:
    """Per-user table, biggest spender first, with total tokens and average cost per request."""
    table = per_user.copy()
    table["tokens_total"] = table[list(TOKEN_COLUMNS)].sum(axis=1).astype("int64")
    table["avg_cost_per_request"] = _money(
        (_divide(c, r) for c, r in zip(table["cost_usd"], table["requests"], strict=True)),
        table.index,
    )
    return _by_cost(table, "user_id")


def totals(per_user: pd.DataFrame) -> dict[str, int | Decimal]:
    """Whole-window totals: users, requests, tokens by kind, cost (exact)."""
    result: dict[str, int | Decimal] = {"users": len(per_user)}
    for column in ("requests", *TOKEN_COLUMNS):
        result[column] = int(per_user[column].sum())
    result["cost_usd"] = money_sum(per_user["cost_usd"])
    return result


def top_spenders(per_user: pd.DataFrame, n: int = 20) -> pd.DataFrame:
    """The `n` biggest spenders with their share of the window's total cost (a fraction)."""
    table = _by_cost(per_user, "user_id")
    total = money_sum(table["cost_usd"])
    top = table.head(n).copy()
    top["share_of_cost"] = [float(c / total) if total else 0.0 for c in top["cost_usd"]]
    return top


# --- per day and model ---------------------------------------------------------------------------
def daily_cost_by_model(
    per_day_model: pd.DataFrame, days: pd.DatetimeIndex | None = None
) -> pd.DataFrame:
    """Wide table: one row per day (all of `days` when given), one column per model, Decimal cost.

    Columns are ordered by total cost, largest first (the bottom of a stacked chart).
    """
    grouped = per_day_model.groupby(["day", "model"])["cost_usd"].sum()
    wide = grouped.unstack("model") if len(grouped) else pd.DataFrame(index=pd.DatetimeIndex([]))
    if days is not None:
        wide = wide.reindex(days)
    wide = wide.astype(object).where(wide.notna(), ZERO)
    order = sorted(wide.columns, key=lambda m: (-money_sum(wide[m]), str(m)))
    wide = wide[order]
    wide.index.name = "day"
    wide.columns.name = "model"
    return wide


def model_summary(per_day_model: pd.DataFrame) -> pd.DataFrame:
    """Per provider and model: requests, tokens, cost and share of cost, most expensive first."""
    columns = ["requests", *TOKEN_COLUMNS, "cost_usd"]
    summary = per_day_model.groupby(["provider", "model"], as_index=False)[columns].sum()
    summary["cost_usd"] = _money((Decimal(c) for c in summary["cost_usd"]), summary.index)
    total = money_sum(summary["cost_usd"])
    summary["share_of_cost"] = [float(c / total) if total else 0.0 for c in summary["cost_usd"]]
    return _by_cost(summary, "model")


def daily_totals(
    per_day_model: pd.DataFrame,
    user_days: pd.DataFrame | None = None,
    days: pd.DatetimeIndex | None = None,
) -> pd.DataFrame:
    """Per day: requests, tokens and cost across models; active users when `user_days` is given.

    With `days`, every one of them has a row, days without usage holding 0 (a gap in a table
    of days reads as "no data", not as "nothing spent").
    """
    columns = ["requests", *TOKEN_COLUMNS, "cost_usd"]
    daily = per_day_model.groupby("day", as_index=False)[columns].sum()
    if days is not None:
        daily = _fill(daily.set_index("day").reindex(days), columns).rename_axis("day")
        daily = daily.reset_index()
    daily["cost_usd"] = _money((Decimal(c) for c in daily["cost_usd"]), daily.index)
    if user_days is not None:
        active = user_days[user_days["requests"] > 0].groupby("day")["user_id"].nunique()
        daily.insert(1, "active_users", daily["day"].map(active).fillna(0).astype("int64"))
    return daily.sort_values("day", ignore_index=True)


def _fill(frame: pd.DataFrame, columns: Iterable[str]) -> pd.DataFrame:
    """Missing rows of a reindexed frame as zeros: counts 0 (int64), money `Decimal(0)`."""
    out = frame.copy()
    for name in columns:
        if name == "cost_usd" or name.endswith("_usd"):
            out[name] = _money((ZERO if pd.isna(v) else v for v in out[name]), out.index)
        else:
            out[name] = out[name].fillna(0).astype("int64")
    return out


def fill_user_days(user_days: pd.DataFrame, days: pd.DatetimeIndex) -> pd.DataFrame:
    """Every user of `user_days` on every one of `days` (0 on the days without usage), plus any
    loaded day outside `days`; by user, then day."""
    if user_days.empty:
        return user_days
    users = sorted(user_days["user_id"].unique())
    grid = pd.MultiIndex.from_product([users, days], names=["user_id", "day"])
    keyed = user_days.set_index(["user_id", "day"])
    full = keyed.reindex(grid.union(keyed.index))
    values = [c for c in user_days.columns if c not in ("user_id", "day")]
    return _fill(full, values).reset_index()[list(user_days.columns)]


# --- budgets -------------------------------------------------------------------------------------
def _month_start(days: pd.Series) -> pd.Series:
    return days.dt.to_period("M").dt.start_time


def _user_budgets(
    users: pd.Series, default: Decimal | None, overrides: dict[str, Decimal | None]
) -> pd.Series:
    """Each row's budget: the user's override when set, else the default (0: no budget)."""
    return _money(
        ((overrides[u] if overrides.get(u) is not None else default) or ZERO for u in users),
        users.index,
    )


def budget_breaches(
    user_days: pd.DataFrame,
    *,
    daily_budget: Decimal | None = None,
    monthly_budget: Decimal | None = None,
    limits: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """User-days over their daily budget and user-months over their monthly one.

    A user's budget is their override in `limits` (`user_id`, `daily_budget_usd`,
    `monthly_budget_usd`, as in `public.user_limits`) when set, else the default; 0 or None
    means no budget, exactly as the service's guards read them. Over means strictly above.
    Days and months are UTC calendar ones, as far as `user_days` covers them: a window that
    starts mid-month sees only part of that month's spend.
    """
    columns = ["user_id", "period", "start", "spend_usd", "budget_usd", "over_by_usd"]
    known = limits if limits is not None else pd.DataFrame(columns=BUDGET_LIMIT_COLUMNS)
    found: list[pd.DataFrame] = []
    months = user_days.assign(start=_month_start(user_days["day"]))
    spend_by_period = {
        "day": user_days.rename(columns={"day": "start"}),
        "month": months.groupby(["user_id", "start"], as_index=False)["cost_usd"].sum(),
    }
    for period, default, column in (
        ("day", daily_budget, "daily_budget_usd"),
        ("month", monthly_budget, "monthly_budget_usd"),
    ):
        spend = spend_by_period[period]
        overrides = dict(zip(known["user_id"], known[column], strict=True))
        budget = _user_budgets(spend["user_id"], default, overrides)
        over = (budget > ZERO) & (spend["cost_usd"] > budget)
        found.append(
            pd.DataFrame({"user_id": spend["user_id"][over], "period": period,
                          "start": spend["start"][over], "spend_usd": spend["cost_usd"][over],
                          "budget_usd": budget[over]})
        )  # fmt: skip
    breaches = pd.concat(found, ignore_index=True)
    if breaches.empty:
        return pd.DataFrame(columns=columns)
    breaches["over_by_usd"] = _money(
        (s - b for s, b in zip(breaches["spend_usd"], breaches["budget_usd"], strict=True)),
        breaches.index,
    )
    for money in ("spend_usd", "budget_usd"):
        breaches[money] = _money(breaches[money], breaches.index)
    ordered = breaches.sort_values(
        ["period", "over_by_usd", "user_id"], ascending=[True, False, True]
    )
    return ordered[columns].reset_index(drop=True)


# --- anomalies -----------------------------------------------------------------------------------
def anomalies(
    user_days: pd.DataFrame,
    *,
    threshold: float = 3.5,
    min_active_days: int = 7,
    min_cost_usd: Decimal = Decimal("1"),
) -> pd.DataFrame:
    """User-days far above the user's own baseline (robust z-score, see the module docstring)."""
    columns = ["user_id", "day", "cost_usd", "requests", "baseline_median_usd", "robust_z"]
    active = user_days[user_days["requests"] > 0].copy()
    if active.empty:
        return pd.DataFrame(columns=columns)
    cost = active["cost_usd"].map(float)
    by_user = cost.groupby(active["user_id"])
    median = by_user.transform("median")
    deviation = (cost - median).abs()
    mad = deviation.groupby(active["user_id"]).transform("median")
    mean_ad = deviation.groupby(active["user_id"]).transform("mean")
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(
            mad > 0,
            0.6745 * (cost - median) / mad,
            np.where(mean_ad > 0, (cost - median) / (1.253314 * mean_ad), 0.0),
        )
    exact_median = active.groupby("user_id")["cost_usd"].transform(statistics.median)
    active["baseline_median_usd"] = _money(exact_median, active.index)
    active["robust_z"] = z
    days_seen = active.groupby("user_id")["day"].transform("count")
    flagged = active[
        (active["robust_z"] > threshold)
        & (days_seen >= min_active_days)
        & (active["cost_usd"] >= min_cost_usd)
    ]
    return flagged.sort_values(["robust_z", "user_id"], ascending=[False, True], ignore_index=True)[
        columns
    ]
