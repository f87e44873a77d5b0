"""The cost report for a window: load the aggregates, shape them, write tables, charts and pages.

`build_report` makes five calls to the aggregate SQL functions (per user, per day and model,
user-days, top conversations and their summary), reads the per-user budget overrides
(`public.user_limits`, when the guards migration is there) and shapes the answers with `costs`.
`write_report` writes PNG charts always, and the tables as CSV (exact decimal strings), a
Markdown page and/or an HTML page that shows tables and charts together (dollars rounded for
people).

Windows are `[since, until)`. Budgets and anomalies look at whole UTC days inside the window;
the month-to-date projection is as of the window's last day and reads that month from its 1st
(and the trailing week) even when the window starts later.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from app.analytics import charts, costs, load

Progress = Callable[[str], None]
FORMATS = ("csv", "html", "md")
PAGE_ROWS = 50  # rows of a long table shown in the HTML/Markdown page (the CSV has them all)


def parse_moment(text: str) -> datetime:
    """`YYYY-MM-DD` (midnight UTC) or an ISO 8601 date-time (naive means UTC)."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


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
    daily_budget: Decimal | None = None
    monthly_budget: Decimal | None = None
    top_n: int = 20
    trailing_days: int = 7

    @property
    def window(self) -> load.Window:
        return load.Window(self.since, self.until, self.user_id)

    @property
    def as_of(self) -> date:
        """The window's last UTC day (the day holding the instant just before `until`)."""
        return (self.until.astimezone(UTC) - timedelta(microseconds=1)).date()


@dataclass
class CostReport:
    options: ReportOptions
    totals: dict[str, int | Decimal]
    users: pd.DataFrame
    top_users: pd.DataFrame
    models: pd.DataFrame
    daily: pd.DataFrame
    daily_by_model: pd.DataFrame
    conversation_summary: pd.DataFrame
    top_conversations: pd.DataFrame
    budget_breaches: pd.DataFrame
    month_to_date: pd.DataFrame
    anomalies: pd.DataFrame
    user_days: pd.DataFrame  # from the projection's month start (or earlier) to `until`

    @property
    def empty(self) -> bool:
        return not self.totals["requests"]

    def tables(self) -> dict[str, pd.DataFrame]:
        """Every table by file stem, in page order."""
        return {
            "totals": pd.DataFrame([self.totals]),
            "top_users": self.top_users,
            "models": self.models,
            "daily": self.daily,
            "conversation_summary": self.conversation_summary,
            "top_conversations": self.top_conversations,
            "month_to_date": self.month_to_date,
            "budget_breaches": self.budget_breaches,
            "anomalies": self.anomalies,
            "users": self.users,
            "daily_by_model": self.daily_by_model.reset_index(),
        }


def _utc_day(moment: datetime) -> pd.Timestamp:
    return pd.Timestamp(moment.astimezone(UTC).date())


def build_report(
    source: load.Source, options: ReportOptions, progress: Progress | None = None
) -> CostReport:
    """Load the aggregates for the window and shape every table of the report."""

    def step(message: str) -> None:
        if progress:
            progress(message)

    window = options.window
    step("loading usage per user")
    per_user = load.load_per_user(source, window)
    step("loading usage per day and model")
    per_day_model = load.load_per_day_model(source, window)
    step("loading conversations")
    summary = load.load_conversation_summary(source, window)
    top_conversations = load.load_top_conversations(source, window, options.top_n)
    first_needed = min(
        options.since,
        datetime.combine(options.as_of.replace(day=1), datetime.min.time(), UTC),
        datetime.combine(
            options.as_of - timedelta(days=options.trailing_days - 1), datetime.min.time(), UTC
        ),
    )
    step("loading usage per user and day")
    user_days = load.load_user_days(
        source, load.Window(first_needed, options.until, options.user_id)
    )

    step("loading budget overrides")
    limits = load.load_budget_limits(source, options.user_id)

    step("shaping tables")
    in_window = user_days[user_days["day"] >= _utc_day(options.since)]
    days = pd.date_range(_utc_day(options.since), pd.Timestamp(options.as_of), freq="D")
    emails = per_user.set_index("user_id")["email"]
    month = costs.month_to_date(user_days, options.as_of, options.trailing_days)
    month.insert(1, "email", month["user_id"].map(emails))
    breaches = costs.budget_breaches(
        in_window,
        daily_budget=options.daily_budget,
        monthly_budget=options.monthly_budget,
        limits=limits,
    )
    breaches.insert(1, "email", breaches["user_id"].map(emails))
    unusual = costs.anomalies(in_window)
    unusual.insert(1, "email", unusual["user_id"].map(emails))
    return CostReport(
        options=options,
        totals=costs.totals(per_user),
        users=costs.user_table(per_user),
        top_users=costs.top_spenders(per_user, options.top_n),
        models=costs.model_summary(per_day_model),
        daily=costs.daily_totals(per_day_model, in_window),
        daily_by_model=costs.daily_cost_by_model(per_day_model, days),
        conversation_summary=summary,
        top_conversations=top_conversations,
        budget_breaches=breaches,
        month_to_date=month,
        anomalies=unusual,
        user_days=user_days,
    )


def _subtitle(options: ReportOptions) -> str:
    since, until = options.since.astimezone(UTC), options.until.astimezone(UTC)
    who = f", user {options.user_id}" if options.user_id else ""
    return f"{since:%Y-%m-%d %H:%M} to {until:%Y-%m-%d %H:%M} UTC{who}"


def build_charts(report: CostReport) -> dict[str, Figure]:
    """The four charts, by file stem."""
    subtitle = _subtitle(report.options)
    figures = {
        "daily_cost_by_model": charts.daily_cost_chart(report.daily_by_model, subtitle),
        "top_users": charts.top_users_chart(report.top_users, subtitle),
        "cost_per_user_distribution": charts.cost_distribution_chart(report.users, subtitle),
    }
    if not report.month_to_date.empty:
        leader = report.month_to_date.iloc[0]  # the highest projection (or the --user)
        mine = report.user_days[report.user_days["user_id"] == leader["user_id"]]
        label = leader["email"] if isinstance(leader["email"], str) else ""
        figures["month_projection"] = charts.month_projection_chart(
            mine, leader, label=label, monthly_budget=report.options.monthly_budget
        )
    return figures


# --- writing -------------------------------------------------------------------------------------
def _exact(frame: pd.DataFrame) -> pd.DataFrame:
    """Money as plain decimal strings for CSV ("0.00000000", never "0E-8")."""
    out = frame.copy()
    for name in out.columns:
        if out[name].dtype == object and any(isinstance(v, Decimal) for v in out[name]):
            out[name] = [f"{v:f}" if isinstance(v, Decimal) else v for v in out[name]]
    return out


def display_table(frame: pd.DataFrame) -> pd.DataFrame:
    """A table for people (pages, notebooks): dollars, percentages, dates, thousands separators.

    Long tables are cut to `PAGE_ROWS` rows; the exact values stay in the frame and the CSV.
    """
    out = frame.head(PAGE_ROWS).copy()
    for name in out.columns:
        column = out[name]
        if str(name).startswith("share_"):
            out[name] = [f"{v:.1%}" for v in column]
        elif any(isinstance(v, Decimal) for v in column):
            out[name] = [charts.format_usd(v) if isinstance(v, Decimal) else v for v in column]
        elif pd.api.types.is_integer_dtype(column.dtype):
            out[name] = [f"{v:,}" for v in column]
        elif pd.api.types.is_datetime64_any_dtype(column.dtype):
            fmt = "%Y-%m-%d %H:%M" if getattr(column.dt, "tz", None) else "%Y-%m-%d"
            out[name] = column.dt.strftime(fmt)
        elif pd.api.types.is_float_dtype(column.dtype):
            out[name] = [f"{v:.1f}" for v in column]
    return out.fillna("")


def _markdown_table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "_none_\n"
    shown = display_table(frame)
    cells = [[str(c) for c in shown.columns], *[[str(v) for v in row] for row in shown.values]]
    cells = [[c.replace("|", "\\|") for c in row] for row in cells]
    lines = ["| " + " | ".join(cells[0]) + " |", "|" + "---|" * len(cells[0])]
    lines += ["| " + " | ".join(row) + " |" for row in cells[1:]]
    more = (
        f"\n_{len(frame) - PAGE_ROWS:,} more rows in the CSV._\n" if len(frame) > PAGE_ROWS else ""
    )
    return "\n".join(lines) + "\n" + more


_TITLES = {
    "totals": "Totals",
    "top_users": "Top spenders",
    "models": "Cost by model",
    "daily": "Cost by day",
    "conversation_summary": "Cost per conversation",
    "top_conversations": "Most expensive conversations",
    "month_to_date": "Month to date and projected month end",
    "budget_breaches": "Over budget",
    "anomalies": "Unusual days (far above the user's own baseline)",
    "users": "All users",
}
_CHART_TITLES = {
    "daily_cost_by_model": "Daily cost by model",
    "top_users": "Top users",
    "cost_per_user_distribution": "Cost per user",
    "month_projection": "Month to date vs projection",
}


def _headline(report: CostReport) -> str:
    t = report.totals
    return (
        f"{t['users']:,} users, {t['requests']:,} requests, "
        f"{charts.format_usd(t['cost_usd'])} ({t['cost_usd']:f} USD exactly)"
    )


def _markdown(report: CostReport, pngs: dict[str, Path]) -> str:
    parts = [f"# Cost report\n\n{_subtitle(report.options)}\n\n**{_headline(report)}**\n"]
    parts += [f"![{_CHART_TITLES[stem]}]({path.name})\n" for stem, path in pngs.items()]
    for stem, table in report.tables().items():
        if stem in _TITLES:
            parts.append(f"## {_TITLES[stem]}\n\n{_markdown_table(table)}")
    return "\n".join(parts)


_CSS = """body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1250px;color:#222}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0 1.5rem}
th,td{border-bottom:1px solid #ddd;padding:.25rem .6rem;text-align:right}
th{background:#f4f4f4}img{max-width:100%;height:auto;border:1px solid #eee;margin:.5rem 0}
.charts{display:grid;grid-template-columns:1fr;gap:1rem}"""


def _html(report: CostReport, pngs: dict[str, Path]) -> str:
    images = "".join(
        f'<figure><img src="{html.escape(path.name)}" alt="{_CHART_TITLES[stem]}" '
        f'width="{charts.SIZE_PX[0]}" height="{charts.SIZE_PX[1]}"></figure>'
        for stem, path in pngs.items()
    )
    sections = []
    for stem, table in report.tables().items():
        if stem not in _TITLES:
            continue
        body = "<p><em>none</em></p>" if table.empty else display_table(table).to_html(index=False)
        more = (
            f"<p>{len(table) - PAGE_ROWS:,} more rows in {stem}.csv</p>"
            if len(table) > PAGE_ROWS else ""
        )  # fmt: skip
        sections.append(f"<h2>{html.escape(_TITLES[stem])}</h2>{body}{more}")
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Cost report</title><style>{_CSS}</style></head><body>"
        f"<h1>Cost report</h1><p>{html.escape(_subtitle(report.options))}</p>"
        f"<p><strong>{html.escape(_headline(report))}</strong></p>"
        f'<div class="charts">{images}</div>{"".join(sections)}</body></html>\n'
    )


def write_report(report: CostReport, out_dir: Path, formats: Iterable[str] = FORMATS) -> list[Path]:
    """Write charts (PNG) and the tables in `formats`; return the files written."""
    chosen = set(formats)
    unknown = chosen - set(FORMATS)
    if unknown:
        raise ValueError(f"unknown format(s): {', '.join(sorted(unknown))}")
    out_dir.mkdir(parents=True, exist_ok=True)
    pngs = {stem: charts.save_png(fig, out_dir / f"{stem}.png")
            for stem, fig in build_charts(report).items()}  # fmt: skip
    written = list(pngs.values())
    if "csv" in chosen:
        for stem, table in report.tables().items():
            path = out_dir / f"{stem}.csv"
            _exact(table).to_csv(path, index=False)
            written.append(path)
    if "md" in chosen:
        path = out_dir / "report.md"
        path.write_text(_markdown(report, pngs), encoding="utf-8")
        written.append(path)
    if "html" in chosen:
        path = out_dir / "report.html"
        path.write_text(_html(report, pngs), encoding="utf-8")
        written.append(path)
    return written
