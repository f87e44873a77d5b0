"""Cost analytics for analysts: load aggregates, shape them, chart them, write reports.

Heavy aggregation runs in PostgreSQL (the analytics SQL functions, which read the daily rollup
`public.usage_daily`); `load` calls those functions over psycopg or Supabase's API, `costs`,
`views` and `projection` shape the answers, `charts` draws PNGs, the `report` package builds
and writes CSV/Markdown/HTML, `reconcile` proves the rollup equals the raw rows. `project` finds
the project root (and its `.env` and local stack) wherever a notebook or script starts, and
`source.resolve_source` is the one rule for which database or project to read.

One call builds a report with the project's settings (source, prices, budgets):
`analytics.cost_report(since="2026-11-01")` (`app.analytics.report.from_settings`).

Money (the rule, in full in `app.analytics.money`): frames analysts handle hold money as float
columns, ready for pandas (`report.daily.plot(x="day", y="cost_usd")`); exact `Decimal` is kept
where exactness matters: `CostReport.totals`, `CostReport.exact` (written to the CSV export) and
reconciliation. People see `money.format_usd` ("$178.08"). `seed` and `seed_copy` generate and
load realistic usage data (tooling, not re-exported here).
"""

from app.analytics.charts import (
    cost_distribution_chart,
    daily_cost_chart,
    month_projection_chart,
    save_png,
    top_users_chart,
)
from app.analytics.costs import (
    anomalies,
    budget_breaches,
    daily_cost_by_model,
    daily_totals,
    model_summary,
    top_spenders,
    totals,
    user_table,
)
from app.analytics.load import (
    UnknownUser,
    Window,
    load_conversation_summary,
    load_per_day_model,
    load_per_day_status,
    load_per_user,
    load_top_conversations,
    load_user_days,
    resolve_user,
)
from app.analytics.money import format_column, format_usd, to_float
from app.analytics.projection import app_projection, month_projection
from app.analytics.report import (
    CostReport,
    ReportOptions,
    build_charts,
    build_report,
    cost_report,
    display_table,
    write_report,
)
from app.analytics.source import resolve_source
from app.analytics.sources import (
    FunctionsMissing,
    PostgresSource,
    Source,
    SourceError,
    SourceUnreachable,
    SupabaseSource,
)
from app.analytics.views import (
    cache_savings,
    model_mix,
    unit_costs,
    wasted_spend,
    weekly_trend,
)

__all__ = [
    "CostReport",
    "FunctionsMissing",
    "PostgresSource",
    "ReportOptions",
    "Source",
    "SourceError",
    "SourceUnreachable",
    "SupabaseSource",
    "UnknownUser",
    "Window",
    "anomalies",
    "app_projection",
    "budget_breaches",
    "build_charts",
    "build_report",
    "cache_savings",
    "cost_distribution_chart",
    "cost_report",
    "daily_cost_by_model",
    "daily_cost_chart",
    "daily_totals",
    "display_table",
    "format_column",
    "format_usd",
    "load_conversation_summary",
    "load_per_day_model",
    "load_per_day_status",
    "load_per_user",
    "load_top_conversations",
    "load_user_days",
    "model_mix",
    "model_summary",
    "month_projection",
    "month_projection_chart",
    "resolve_source",
    "resolve_user",
    "save_png",
    "to_float",
    "top_spenders",
    "top_users_chart",
    "totals",
    "unit_costs",
    "user_table",
    "wasted_spend",
    "weekly_trend",
    "write_report",
]
