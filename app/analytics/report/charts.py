"""The report's charts, with the window (and any filter) as their subtitle.

Everyone: daily cost by model, top users, the distribution of cost per user, the month's
forecast. One user: the charts that need several users give way to that user's cost over time.
"""

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
    "cost_over_time": "Cost over time",
    "month_projection": "Month to date and forecast",
}


def subtitle(options: ReportOptions, email: str | None = None) -> str:
    """The window, and the user (by email when known) and model a report is cut to."""
    since, until = options.since.astimezone(UTC), options.until.astimezone(UTC)
    name = email or (f"user {options.user_id[:8]}" if options.user_id else "")
    who = f", {name}" if name else ""
    which = f", model {options.model}" if options.model else ""
    return f"{since:%Y-%m-%d %H:%M} to {until:%Y-%m-%d %H:%M} UTC{who}{which}"


def _app_daily(report: CostReport) -> pd.DataFrame:
    days = report.exact["user_days"]
    return days.groupby("day", as_index=False)["cost_usd"].sum()


def build_charts(report: CostReport) -> dict[str, Figure]:
    """The report's charts by file stem (see the module docstring)."""
    caption = subtitle(report.options, report.user_email)
    wide = report.exact["daily_by_model"].set_index("day")
    forecast = report.exact["app_forecast"].iloc[0]
    user_id = report.options.user_id
    one = user_id is not None
    who = report.user_email or (f"user {user_id[:8]}" if user_id else "all users")
    figures = {"daily_cost_by_model": charts.daily_cost_chart(wide, caption, report.partial_days)}
    if one:
        figures["cost_over_time"] = charts.user_cost_chart(report.exact["daily"], who, caption)
    else:
        figures["top_users"] = charts.top_users_chart(report.exact["top_users"], caption)
        figures["cost_per_user_distribution"] = charts.cost_distribution_chart(
            report.exact["users"], caption
        )
    figures["month_projection"] = charts.month_projection_chart(
        _app_daily(report), forecast, label=who,
        monthly_budget=report.options.monthly_budget if one else None,
    )  # fmt: skip
    return figures
