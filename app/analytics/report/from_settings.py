"""A report in one call, from the project's settings: the source, the prices and the budgets.

    from app import analytics
    report = analytics.cost_report(since="2026-11-01", user="ana@example.com")
    report.daily.plot(x="day", y="cost_usd")

`cost_report` reads the settings (`project.settings()`: the environment, then the project's
`.env`), picks the source by `resolve_source` unless one is given, prices the cache savings with
the project's `Pricer`, takes the budgets from `DAILY_BUDGET_USD` / `MONTHLY_BUDGET_USD` unless
given, and looks a user up by email or id. Values may be strings, as notebook parameters and
command lines give them. No caller needs `app.local` or `app.core.pricing`.
"""

from __future__ import annotations

import dataclasses
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from app.analytics import load, project, sources
from app.analytics.report.build import CostReport, Progress, build_report
from app.analytics.report.options import (
    ReportOptions,
    default_window,
    parse_moment,
    parse_month,
)
from app.analytics.source import resolve_source
from app.config import Settings
from app.core.pricing import Pricer

Moment = datetime | str | None
Amount = Decimal | float | int | str | None


def _moment(value: Moment) -> datetime | None:
    return parse_moment(value) if isinstance(value, str) and value else value or None


def _budget(value: Amount, default: Decimal) -> Decimal | None:
    """The budget given, else the settings'; 0 means none, as the service's guards read it."""
    if value is None or value == "":
        return default or None
    try:
        amount = Decimal(str(value))
    except InvalidOperation as exc:
        raise ValueError(f"not an amount in USD: {value!r}") from exc
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"not an amount in USD: {value!r}")
    return amount or None


def report_options(
    settings: Settings,
    *,
    since: Moment = None,
    until: Moment = None,
    model: str | None = None,
    month: date | str | None = None,
    daily_budget: Amount = None,
    monthly_budget: Amount = None,
    top_n: int = 20,
    now: datetime | None = None,
    cost_tolerance: Amount = None,
) -> ReportOptions:
    """Options from loose values (strings welcome); budgets default to the settings'.

    Raises `ValueError` for a window that ends before it starts, a bad amount or `top_n` < 1.
    """
    begin, end = default_window(_moment(since), _moment(until))
    if begin >= end:
        raise ValueError("since must be before until")
    if top_n < 1:
        raise ValueError("top_n must be at least 1")
    return ReportOptions(
        since=begin, until=end, model=model or None,
        month=parse_month(month) if isinstance(month, str) and month else month or None,
        daily_budget=_budget(daily_budget, settings.daily_budget_usd),
        monthly_budget=_budget(monthly_budget, settings.monthly_budget_usd),
        top_n=top_n, now=now,
        cost_tolerance=_budget(cost_tolerance, settings.provider_cost_tolerance_usd) or Decimal(0),
    )  # fmt: skip


def cost_report(
    source: sources.Source | None = None,
    *,
    options: ReportOptions | None = None,
    since: Moment = None,
    until: Moment = None,
    user: str | None = None,
    model: str | None = None,
    month: date | str | None = None,
    daily_budget: Amount = None,
    monthly_budget: Amount = None,
    top_n: int = 20,
    settings: Settings | None = None,
    progress: Progress | None = None,
) -> CostReport:
    """The cost report, priced and budgeted from the settings (see the module docstring).

    `options` (from `report_options`) replaces the window arguments; `user` (an email or an
    id) is looked up in the source. Raises `load.UnknownUser`, `sources.SourceError`.
    """
    config = settings or project.settings()
    if options is None:
        options = report_options(
            config, since=since, until=until, model=model, month=month,
            daily_budget=daily_budget, monthly_budget=monthly_budget, top_n=top_n,
        )  # fmt: skip
    elif any(v not in (None, "") for v in (since, until, model, month, daily_budget,
                                           monthly_budget)):  # fmt: skip
        raise ValueError("give options or the window arguments, not both")
    chosen = source or resolve_source(settings=config)
    try:
        if user:
            email = user.strip() if "@" in user else None
            user_id = load.resolve_user(chosen, user)
            options = dataclasses.replace(options, user_id=user_id, user_email=email)
        return build_report(chosen, options, progress, Pricer(config).price)
    finally:
        if source is None and isinstance(chosen, sources.SupabaseSource):
            chosen.close()
