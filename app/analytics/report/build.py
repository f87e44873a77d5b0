"""Build a report: load the aggregates for a window and shape every table of it.

`build_report` calls the aggregate SQL functions (per user, per day and model, per day and
outcome, user-days, top conversations and their summary; the first four read the daily
rollup), reads the per-user budget overrides (`public.user_limits`, when the guards migration
is there) and shapes the answers with `costs`, `views` and `projection`. Every table exists
twice: exact (`CostReport.exact`, `Decimal` money, written to CSV) and as the float frames on
the report's attributes, ready for pandas (`report.daily.plot(x="day", y="cost_usd")`); the
rule is in `app.analytics.money`.

Budgets and anomalies look at UTC days inside the window; projections are described in
`app.analytics.projection`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal

import pandas as pd

from app.analytics import costs, load, money, projection, provider_cost, sources, views
from app.analytics.report.options import ReportOptions

Progress = Callable[[str], None]
STEPS = 8  # progress steps `build_report` reports
_EIGHT = Decimal("0.00000001")


@dataclass
class CostReport:
    """Float frames for pandas (attributes), exact tables (`exact`), exact `totals`."""

    options: ReportOptions
    totals: dict[str, int | Decimal]
    users: pd.DataFrame
    top_users: pd.DataFrame
    models: pd.DataFrame  # model mix
    daily: pd.DataFrame
    weekly: pd.DataFrame
    unit_costs: pd.DataFrame
    cache_savings: pd.DataFrame
    wasted_spend: pd.DataFrame
    daily_by_model: pd.DataFrame
    conversation_summary: pd.DataFrame
    top_conversations: pd.DataFrame
    app_forecast: pd.DataFrame
    projection: pd.DataFrame  # per user
    budget_breaches: pd.DataFrame
    anomalies: pd.DataFrame
    user_days: pd.DataFrame  # from the projected month's start (or earlier) to `until`
    partial_days: set[pd.Timestamp] = field(default_factory=set)
    exact: dict[str, pd.DataFrame] = field(default_factory=dict)
    priced: bool = False  # cache savings were priced
    # Provider-reported cost against the table price (`app.analytics.provider_cost`).
    cost_reconciliation: pd.DataFrame = field(default_factory=pd.DataFrame)
    cost_mismatches: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def empty(self) -> bool:
        return not self.totals["requests"]

    @property
    def user_email(self) -> str | None:
        """The one user's email in a one-user report (None for everyone, or when unknown)."""
        if not self.options.user_id:
            return None
        if self.options.user_email:
            return self.options.user_email
        known = self.users.loc[self.users["user_id"] == self.options.user_id, "email"]
        found = known.dropna()
        return str(found.iloc[0]) if len(found) else None

    def tables(self) -> dict[str, pd.DataFrame]:
        """Every float table by file stem, in page order."""
        return {stem: getattr(self, stem) for stem in TABLE_ORDER if stem != "totals"} | {
            "totals": money.to_float(pd.DataFrame([self.totals]))
        }


TABLE_ORDER = (
    "totals", "unit_costs", "app_forecast", "models", "cache_savings", "wasted_spend", "daily",
    "weekly", "top_users", "projection", "budget_breaches", "anomalies", "conversation_summary",
    "top_conversations", "users", "daily_by_model", "cost_reconciliation", "cost_mismatches",
)  # fmt: skip


def _utc_day(moment: datetime) -> pd.Timestamp:
    return pd.Timestamp(moment.astimezone(UTC).date())


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


def _with_email(frame: pd.DataFrame, emails: pd.Series, after: str = "user_id") -> pd.DataFrame:
    out = frame.copy()
    out.insert(list(out.columns).index(after) + 1, "email", out[after].map(emails))
    return out


def build_report(
    source: sources.Source,
    options: ReportOptions,
    progress: Progress | None = None,
    price: views.PriceFn | None = None,
) -> CostReport:
    """Load the aggregates for the window and shape every table of the report.

    `price` (`Pricer.price`) prices the cache savings; without it that table lists the cache
    tokens with empty amounts and a `note` saying why (`analytics.cost_report` prices from the
    settings).
    """

    def step(message: str) -> None:
        if progress:
            progress(message)

    window = options.window
    step("loading usage per user")
    per_user = load.load_per_user(source, window, exact=True)
    step("loading usage per day and model")
    per_day_model = load.load_per_day_model(source, window, exact=True)
    step("loading usage per day and outcome")
    per_day_status = load.load_per_day_status(source, window, exact=True)
    step("loading conversations")
    summary = load.load_conversation_summary(source, window, exact=True)
    top_conversations = load.load_top_conversations(source, window, options.top_n, exact=True)
    month = projection.projection_month(options.coverage, options.month)
    first_needed = min(options.since, _midnight(month))
    step("loading usage per user and day")
    user_days = load.load_user_days(
        source, load.Window(first_needed, options.until, options.user_id, options.model), exact=True
    )
    step("loading budget overrides")
    limits = load.load_budget_limits(source, options.user_id, exact=True)
    step("loading provider-reported cost mismatches")
    mismatches, by_model = provider_cost.reconciliation(source, window, options.cost_tolerance)

    step("shaping tables")
    cover = projection.coverage(first_needed, options.until, options.now)
    window_cover = options.coverage
    observed = options.observed_days()
    user_days = costs.fill_user_days(user_days, options.observed_days(first_needed))
    in_window = user_days[user_days["day"] >= _utc_day(options.since)]
    days = pd.date_range(_utc_day(options.since), pd.Timestamp(options.as_of), freq="D")
    partial = {d for d in days if window_cover.day_kind(d.date()) == "partial"}
    emails = per_user.set_index("user_id")["email"]
    daily = costs.daily_totals(per_day_model, in_window, observed)
    daily.insert(1, "partial", daily["day"].isin(partial))
    daily["cost_per_active_user"] = [
        (c / a).quantize(_EIGHT) if a else None
        for c, a in zip(daily["cost_usd"], daily["active_users"], strict=True)
    ]
    daily["cost_per_request"] = [
        (c / r).quantize(_EIGHT) if r else None
        for c, r in zip(daily["cost_usd"], daily["requests"], strict=True)
    ]
    breaches = costs.budget_breaches(
        in_window,
        daily_budget=options.daily_budget,
        monthly_budget=options.monthly_budget,
        limits=limits,
    )
    exact = {
        "totals": pd.DataFrame([costs.totals(per_user)]),
        "unit_costs": views.unit_costs(per_user),
        "app_forecast": projection.app_projection(user_days, cover, month),
        "models": views.model_mix(per_day_model),
        "cache_savings": views.cache_savings(per_day_model, price)
        if price
        else views.unpriced_cache_savings(per_day_model),
        "wasted_spend": views.wasted_spend(per_day_status),
        "daily": daily,
        "weekly": views.weekly_trend(per_day_model, in_window, partial, observed),
        "top_users": costs.top_spenders(per_user, options.top_n),
        "projection": _with_email(projection.month_projection(user_days, cover, month), emails),
        "budget_breaches": _with_email(breaches, emails),
        "anomalies": _with_email(costs.anomalies(in_window), emails),
        "conversation_summary": summary,
        "top_conversations": _with_email(top_conversations, emails),
        "users": costs.user_table(per_user),
        "daily_by_model": costs.daily_cost_by_model(per_day_model, days).reset_index(),
        "user_days": user_days,
        "cost_reconciliation": by_model,
        "cost_mismatches": _with_email(mismatches, emails),
    }
    floats = {stem: money.to_float(table) for stem, table in exact.items()}
    wide = costs.daily_cost_by_model(per_day_model, days)
    return CostReport(
        options=options,
        totals=costs.totals(per_user),
        users=floats["users"],
        top_users=floats["top_users"],
        models=floats["models"],
        daily=floats["daily"],
        weekly=floats["weekly"],
        unit_costs=floats["unit_costs"],
        cache_savings=floats["cache_savings"],
        wasted_spend=floats["wasted_spend"],
        daily_by_model=wide.map(float).astype("float64"),
        conversation_summary=floats["conversation_summary"],
        top_conversations=floats["top_conversations"],
        app_forecast=floats["app_forecast"],
        projection=floats["projection"],
        budget_breaches=floats["budget_breaches"],
        anomalies=floats["anomalies"],
        user_days=floats["user_days"],
        partial_days=partial,
        exact=exact,
        priced=price is not None,
        cost_reconciliation=floats["cost_reconciliation"],
        cost_mismatches=floats["cost_mismatches"],
    )
