"""The report's four charts, with the window (and any filter) as their subtitle."""

from __future__ import annotations

from datetime import UTC

import pandas as pd
from matplotlib.figure import Figure

from app.analytics import charts
from app.analytics.report.build import CostReport
from app.analytics.report.options import ReportOptions

CHART_TITLES = {
    "daily_cost_by_model": "Daily cost by model",
    "top_users": "Top users",
    "cost_per_user_distribution": "Cost per user",
    "month_projection": "Month to date and forecast",
}


def subtitle(options: ReportOptions) -> str:
    since, until = options.since.astimezone(UTC), options.until.astimezone(UTC)
    who = f", user {options.user_id[:8]}" if options.user_id else ""
    which = f", model {options.model}" if options.model else ""
    return f"{since:%Y-%m-%d %H:%M} to {until:%Y-%m-%d %H:%M} UTC{who}{which}"


def _app_daily(report: CostReport) -> pd.DataFrame:
    days = report.exact["user_days"]
    return days.groupby("day", as_index=False)["cost_usd"].sum()


def build_charts(report: CostReport) -> dict[str, Figure]:
    """The four charts, by file stem."""
    caption = subtitle(report.options)
    wide = report.exact["daily_by_model"].set_index("day")
    forecast = report.exact["app_forecast"].iloc[0]
    label = "all users" if not report.options.user_id else "this user"
    return {
        "daily_cost_by_model": charts.daily_cost_chart(wide, caption, report.partial_days),
        "top_users": charts.top_users_chart(report.exact["top_users"], caption),
        "cost_per_user_distribution": charts.cost_distribution_chart(
            report.exact["users"], caption
        ),
        "month_projection": charts.month_projection_chart(
            _app_daily(report), forecast, label=label,
            monthly_budget=report.options.monthly_budget if report.options.user_id else None,
        ),
    }  # fmt: skip
