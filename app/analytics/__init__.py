"""Cost analytics for analysts: load aggregates, shape them, chart them, write reports.

Heavy aggregation runs in PostgreSQL (`supabase/migrations/*_analytics.sql`); `load` calls those
functions over psycopg or Supabase's API, `costs` shapes the frames (money stays `Decimal`),
`charts` draws PNGs, `report` writes CSV/Markdown/HTML. `seed` and `seed_copy` generate and load
realistic usage data (tooling, not re-exported here).
"""

from app.analytics.charts import (
    cost_distribution_chart,
    daily_cost_chart,
    format_usd,
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
    month_to_date,
    top_spenders,
    totals,
    user_table,
)
from app.analytics.load import (
    FunctionsMissing,
    PostgresSource,
    Source,
    SourceError,
    SourceUnreachable,
    SupabaseSource,
    Window,
    load_conversation_summary,
    load_per_day_model,
    load_per_user,
    load_top_conversations,
    load_user_days,
)
from app.analytics.report import CostReport, ReportOptions, build_charts, build_report, write_report

__all__ = [
    "CostReport",
    "FunctionsMissing",
    "PostgresSource",
    "ReportOptions",
    "Source",
    "SourceError",
    "SourceUnreachable",
    "SupabaseSource",
    "Window",
    "anomalies",
    "budget_breaches",
    "build_charts",
    "build_report",
    "cost_distribution_chart",
    "daily_cost_by_model",
    "daily_cost_chart",
    "daily_totals",
    "format_usd",
    "load_conversation_summary",
    "load_per_day_model",
    "load_per_user",
    "load_top_conversations",
    "load_user_days",
    "model_summary",
    "month_projection_chart",
    "month_to_date",
    "save_png",
    "top_spenders",
    "top_users_chart",
    "totals",
    "user_table",
    "write_report",
]
