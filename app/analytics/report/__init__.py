"""The cost report for a window: options, the tables, the charts, and the pages and files.

`options` (the window, filters, budgets, parsing), `build` (`build_report`: load and shape every
table), `charts` (the four report charts), `display` (tables and summary cards for people),
`render` (`write_report`: PNG, CSV, Markdown, HTML) and `from_settings` (`cost_report`: the one
call, priced and budgeted from the settings). This package exports what notebooks and scripts
use.
"""

from app.analytics.report.build import STEPS, TABLE_ORDER, CostReport, build_report
from app.analytics.report.charts import CHART_TITLES, build_charts, subtitle
from app.analytics.report.display import PAGE_ROWS, display_table, summary
from app.analytics.report.from_settings import cost_report, report_options
from app.analytics.report.options import (
    ReportOptions,
    default_window,
    parse_moment,
    parse_month,
)
from app.analytics.report.render import FORMATS, write_report, write_steps

__all__ = [
    "CHART_TITLES",
    "FORMATS",
    "PAGE_ROWS",
    "STEPS",
    "TABLE_ORDER",
    "CostReport",
    "ReportOptions",
    "build_charts",
    "build_report",
    "cost_report",
    "default_window",
    "display_table",
    "parse_moment",
    "parse_month",
    "report_options",
    "subtitle",
    "summary",
    "write_report",
    "write_steps",
]
