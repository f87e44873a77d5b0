"""The cost report for a window: load the aggregates, shape them, write tables, charts and pages.

`build_report` calls the aggregate SQL functions (per user, per day and model, per day and
outcome, user-days, top conversations and their summary; the first four read the daily
rollup), reads the per-user budget overrides (`public.user_limits`, when the guards migration
is there) and shapes the answers with `costs`, `views` and `projection`. Every table exists
twice: exact (`CostReport.exact`, `Decimal` money, written to CSV) and as the float frames on
the report's attributes, ready for pandas (`report.daily.plot(x="day", y="cost_usd")`); the
rule is in `app.analytics.money`. `write_report` writes PNG charts, CSV tables, a Markdown page
and/or one self-contained HTML page (charts embedded as data: URIs, no external requests).

Windows are `[since, until)`. Days the window or *now* cuts are partial and marked so. Budgets
and anomalies look at UTC days inside the window; projections are described in
`app.analytics.projection`.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from app.analytics import charts, costs, load, money, projection, views

Progress = Callable[[str], None]
FORMATS = ("csv", "html", "md")
PAGE_ROWS = 10  # rows of a long table shown on a page (the CSV has them all)
STEPS = 7  # progress steps `build_report` reports
_EIGHT = Decimal("0.00000001")


def parse_moment(text: str) -> datetime:
    """`YYYY-MM-DD` (midnight UTC) or an ISO 8601 date-time (naive means UTC)."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_month(text: str) -> date:
    """`YYYY-MM` as the 1st of that month."""
    return datetime.strptime(text, "%Y-%m").date()


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
    model: str | None = None
    month: date | None = None  # the month to project (None: the last complete day's)
    daily_budget: Decimal | None = None
    monthly_budget: Decimal | None = None
    top_n: int = 20
    now: datetime | None = None  # None: the clock (days after now are not over yet)

    @property
    def window(self) -> load.Window:
        return load.Window(self.since, self.until, self.user_id, self.model)

    @property
    def as_of(self) -> date:
        """The window's last UTC day (the day holding the instant just before `until`)."""
        return (self.until.astimezone(UTC) - timedelta(microseconds=1)).date()

    @property
    def coverage(self) -> projection.Coverage:
        """What the window's data covers: `[since, until)` cut at now."""
        return projection.coverage(self.since, self.until, self.now)


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

    @property
    def empty(self) -> bool:
        return not self.totals["requests"]

    def tables(self) -> dict[str, pd.DataFrame]:
        """Every float table by file stem, in page order."""
        return {stem: getattr(self, stem) for stem in TABLE_ORDER if stem != "totals"} | {
            "totals": money.to_float(pd.DataFrame([self.totals]))
        }


TABLE_ORDER = (
    "totals", "unit_costs", "app_forecast", "models", "cache_savings", "wasted_spend", "daily",
    "weekly", "top_users", "projection", "budget_breaches", "anomalies", "conversation_summary",
    "top_conversations", "users", "daily_by_model",
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
    source: load.Source,
    options: ReportOptions,
    progress: Progress | None = None,
    price: views.PriceFn | None = None,
) -> CostReport:
    """Load the aggregates for the window and shape every table of the report.

    `price` (`Pricer.price`) prices the cache savings; without it that table is empty.
    """

    def step(message: str) -> None:
        if progress:
            progress(message)

    window = options.window
    step("loading usage per user")
    per_user = load.load_per_user(source, window)
    step("loading usage per day and model")
    per_day_model = load.load_per_day_model(source, window)
    step("loading usage per day and outcome")
    per_day_status = load.load_per_day_status(source, window)
    step("loading conversations")
    summary = load.load_conversation_summary(source, window)
    top_conversations = load.load_top_conversations(source, window, options.top_n)
    month = projection.projection_month(options.coverage, options.month)
    first_needed = min(options.since, _midnight(month))
    step("loading usage per user and day")
    user_days = load.load_user_days(
        source, load.Window(first_needed, options.until, options.user_id, options.model)
    )
    step("loading budget overrides")
    limits = load.load_budget_limits(source, options.user_id)

    step("shaping tables")
    cover = projection.coverage(first_needed, options.until, options.now)
    window_cover = options.coverage
    in_window = user_days[user_days["day"] >= _utc_day(options.since)]
    days = pd.date_range(_utc_day(options.since), pd.Timestamp(options.as_of), freq="D")
    partial = {d for d in days if window_cover.day_kind(d.date()) == "partial"}
    emails = per_user.set_index("user_id")["email"]
    daily = costs.daily_totals(per_day_model, in_window)
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
        "cache_savings": views.cache_savings(per_day_model, price) if price else _NO_SAVINGS,
        "wasted_spend": views.wasted_spend(per_day_status),
        "daily": daily,
        "weekly": views.weekly_trend(per_day_model, in_window, partial),
        "top_users": costs.top_spenders(per_user, options.top_n),
        "projection": _with_email(projection.month_projection(user_days, cover, month), emails),
        "budget_breaches": _with_email(breaches, emails),
        "anomalies": _with_email(costs.anomalies(in_window), emails),
        "conversation_summary": summary,
        "top_conversations": _with_email(top_conversations, emails),
        "users": costs.user_table(per_user),
        "daily_by_model": costs.daily_cost_by_model(per_day_model, days).reset_index(),
        "user_days": user_days,
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
    )


_NO_SAVINGS = pd.DataFrame(
    columns=["provider", "model", "cache_read_tokens", "cache_write_tokens", "read_cost_usd",
             "read_savings_usd", "write_premium_usd", "net_savings_usd"]
)  # fmt: skip


def _subtitle(options: ReportOptions) -> str:
    since, until = options.since.astimezone(UTC), options.until.astimezone(UTC)
    who = f", user {options.user_id[:8]}" if options.user_id else ""
    which = f", model {options.model}" if options.model else ""
    return f"{since:%Y-%m-%d %H:%M} to {until:%Y-%m-%d %H:%M} UTC{who}{which}"


def _app_daily(report: CostReport) -> pd.DataFrame:
    days = report.exact["user_days"]
    return days.groupby("day", as_index=False)["cost_usd"].sum()


def build_charts(report: CostReport) -> dict[str, Figure]:
    """The four charts, by file stem."""
    subtitle = _subtitle(report.options)
    wide = report.exact["daily_by_model"].set_index("day")
    forecast = report.exact["app_forecast"].iloc[0]
    label = "all users" if not report.options.user_id else "this user"
    return {
        "daily_cost_by_model": charts.daily_cost_chart(wide, subtitle, report.partial_days),
        "top_users": charts.top_users_chart(report.exact["top_users"], subtitle),
        "cost_per_user_distribution": charts.cost_distribution_chart(
            report.exact["users"], subtitle
        ),
        "month_projection": charts.month_projection_chart(
            _app_daily(report), forecast, label=label,
            monthly_budget=report.options.monthly_budget if report.options.user_id else None,
        ),
    }  # fmt: skip


# --- display -------------------------------------------------------------------------------------
def _who(frame: pd.DataFrame) -> pd.DataFrame:
    """`user_id` + `email` become one short `user` column (the email, else 8 characters)."""
    if "user_id" not in frame.columns:
        return frame
    out = frame.copy()
    emails = out["email"] if "email" in out.columns else pd.Series(None, index=out.index)
    users = [
        e if isinstance(e, str) and e else (str(u)[:8] if len(str(u)) > 12 else str(u))
        for u, e in zip(out["user_id"], emails, strict=True)
    ]
    out = out.drop(columns=[c for c in ("user_id", "email") if c in out.columns])
    out.insert(0, "user", users)
    return out


def display_table(frame: pd.DataFrame, rows: int | None = PAGE_ROWS) -> pd.DataFrame:
    """A table for people (pages, notebooks): dollars with one number of decimals per column,
    percentages, dates, thousands separators, emails or short ids. Cut to `rows` rows."""
    out = _who(frame.head(rows) if rows else frame.copy())
    for name in list(out.columns):
        column = out[name]
        if name == "conversation_id":
            out[name] = [str(v)[:8] for v in column]
        elif str(name).startswith("share_"):
            out[name] = [f"{v:.1%}" for v in column]
        elif name == "change_vs_previous":
            out[name] = ["" if pd.isna(v) else f"{v:+.1%}" for v in column]
        elif money.is_money_column(name):
            out[name] = money.format_column(column)
        elif pd.api.types.is_bool_dtype(column.dtype):
            out[name] = (
                [name if v else "" for v in column]
                if name == "partial"
                else ["yes" if v else "no" for v in column]
            )
        elif pd.api.types.is_integer_dtype(column.dtype):
            out[name] = [f"{v:,}" for v in column]
        elif pd.api.types.is_datetime64_any_dtype(column.dtype):
            fmt = "%Y-%m-%d %H:%M" if getattr(column.dt, "tz", None) else "%Y-%m-%d"
            out[name] = column.dt.strftime(fmt)
        elif pd.api.types.is_float_dtype(column.dtype):
            out[name] = [f"{v:.1f}" for v in column]
    return out.fillna("")


def _exact_csv(frame: pd.DataFrame) -> pd.DataFrame:
    """Money as plain decimal strings for CSV ("0.00000000", never "0E-8")."""
    out = frame.copy()
    for name in out.columns:
        if out[name].dtype == object and any(isinstance(v, Decimal) for v in out[name]):
            out[name] = [f"{v:f}" if isinstance(v, Decimal) else v for v in out[name]]
    return out


def _usd(value: Decimal | float | None, places: int = 2) -> str:
    return "—" if value is None or pd.isna(value) else money.format_usd(value, places)


def summary(report: CostReport) -> list[tuple[str, str, str]]:
    """The one-screen summary: (label, value, note) for the page's top."""
    t, ex = report.totals, report.exact
    unit = ex["unit_costs"].iloc[0]
    forecast = ex["app_forecast"].iloc[0]
    savings = ex["cache_savings"]
    saved = sum(savings["net_savings_usd"], Decimal(0))
    wasted = ex["wasted_spend"]
    wasted_usd = sum(wasted["cost_usd"][wasted["wasted"].astype(bool)], Decimal(0))
    share = float(wasted_usd / t["cost_usd"]) if t["cost_usd"] else 0.0
    projected = forecast["projected_month_usd"]
    month = pd.Timestamp(forecast["month"]).strftime("%B %Y")
    options = report.options
    if not (options.daily_budget or options.monthly_budget):
        budget = ("Budgets", "no budget set", "pass --daily-budget / --monthly-budget")
    else:
        over = ex["budget_breaches"]
        budget = ("Over budget", f"{over['user_id'].nunique():,} users",
                  f"{len(over):,} user-days or months")  # fmt: skip
    days = len(report.partial_days)
    return [
        ("Total cost", _usd(t["cost_usd"]), f"{t['requests']:,} requests"),
        ("Active users", f"{unit['active_users']:,}",
         f"{_usd(unit['cost_per_active_user'])} per active user"),
        ("Cost per message", _usd(unit["cost_per_request"], 4), "one request per message"),
        (f"Forecast {month}",
         _usd(projected) if projected is not None else "not enough data",
         forecast["basis"]),
        ("Cache saved", _usd(saved), "net of the cache-write premium")
        if report.priced else ("Cache saved", "not priced", "build_report(..., price=...)"),
        ("Wasted spend", _usd(wasted_usd), f"{share:.1%} on failed or cut answers"),
        budget,
        ("Partial days", f"{days}", "hatched in charts, marked in tables" if days else "none"),
    ]  # fmt: skip


_TITLES = {
    "unit_costs": "Cost per active user and per message",
    "app_forecast": "App-wide forecast",
    "models": "Model mix",
    "cache_savings": "Cache savings",
    "wasted_spend": "Spend by outcome (wasted first)",
    "daily": "Cost by day",
    "weekly": "Weekly trend",
    "top_users": "Top spenders",
    "projection": "Month to date and forecast per user",
    "budget_breaches": "Over budget",
    "anomalies": "Unusual days (far above the user's own baseline)",
    "conversation_summary": "Cost per conversation",
    "top_conversations": "Most expensive conversations",
    "users": "All users",
}
_CHART_TITLES = {
    "daily_cost_by_model": "Daily cost by model",
    "top_users": "Top users",
    "cost_per_user_distribution": "Cost per user",
    "month_projection": "Month to date and forecast",
}
# Columns left out of the page (they are in the CSV).
_TOKEN_KINDS = ["tokens_in", "tokens_out", "cache_read_tokens", "cache_write_tokens"]
_PAGE_DROP = {
    "users": ["first_active", "last_active", "partial_requests", "error_requests",
              "estimated_requests", *_TOKEN_KINDS],
    "app_forecast": ["user_id"],
    "daily": ["cache_read_tokens", "cache_write_tokens", "tokens_out"],
    "top_conversations": ["cache_read_tokens", "cache_write_tokens", "first_at", "last_at"],
    "models": ["tokens_in", "tokens_out", "cache_read_tokens", "cache_write_tokens"],
    "top_users": [*_TOKEN_KINDS, "first_active", "last_active", "partial_requests",
                  "error_requests", "estimated_requests"],
    "projection": ["month"],
    "wasted_spend": ["status"],
}  # fmt: skip


def _page_table(stem: str, table: pd.DataFrame) -> pd.DataFrame:
    return table.drop(columns=[c for c in _PAGE_DROP.get(stem, []) if c in table.columns])


def _empty_note(report: CostReport, stem: str) -> str:
    options = report.options
    if stem == "budget_breaches" and not (options.daily_budget or options.monthly_budget):
        return "no budget set"
    if stem == "cache_savings":
        return "no cache tokens" if report.priced else "not priced"
    return "none"


def _markdown_table(frame: pd.DataFrame) -> str:
    shown = display_table(frame)
    cells = [[str(c) for c in shown.columns], *[[str(v) for v in row] for row in shown.values]]
    cells = [[c.replace("|", "\\|") for c in row] for row in cells]
    lines = ["| " + " | ".join(cells[0]) + " |", "|" + "---|" * len(cells[0])]
    lines += ["| " + " | ".join(row) + " |" for row in cells[1:]]
    more = (
        f"\n_{len(frame) - PAGE_ROWS:,} more rows in the CSV._\n" if len(frame) > PAGE_ROWS else ""
    )
    return "\n".join(lines) + "\n" + more


def _markdown(report: CostReport, pngs: dict[str, Path]) -> str:
    facts = "\n".join(f"- **{label}:** {value} ({note})" for label, value, note in summary(report))
    parts = [f"# Cost report\n\n{_subtitle(report.options)}\n\n{facts}\n"]
    parts += [f"![{_CHART_TITLES[stem]}]({path.name})\n" for stem, path in pngs.items()]
    for stem, table in report.tables().items():
        if stem in _TITLES:
            body = (
                f"_{_empty_note(report, stem)}_\n"
                if table.empty
                else _markdown_table(_page_table(stem, table))
            )
            parts.append(f"## {_TITLES[stem]}\n\n{body}")
    return "\n".join(parts)


_CSS = """*{box-sizing:border-box}
body{font:14px/1.4 system-ui,sans-serif;margin:0 auto;padding:1rem 1.5rem;max-width:1200px;
color:#222}
h1{font-size:1.6rem;margin:.2rem 0}h2{font-size:1.1rem;margin:1.2rem 0 .3rem}
.sub{color:#555;margin:0 0 .8rem}
.summary{display:grid;grid-template-columns:repeat(4,1fr);gap:.6rem;margin:.5rem 0 1rem}
.card{border:1px solid #ddd;border-radius:6px;padding:.5rem .7rem;background:#fafafa}
.card .label{font-size:.8rem;color:#555}.card .value{font-size:1.35rem;font-weight:600}
.card .note{font-size:.75rem;color:#666}
.charts{display:grid;grid-template-columns:1fr 1fr;gap:.6rem}
.charts img{width:100%;height:auto;border:1px solid #eee}
table{border-collapse:collapse;font-size:.8rem;max-width:100%}
th,td{border-bottom:1px solid #e3e3e3;padding:.2rem .5rem;text-align:left;white-space:nowrap}
th{background:#f4f4f4;font-weight:600;white-space:normal;vertical-align:bottom;
max-width:9rem}
td.num,th.num{text-align:right}td.text{white-space:normal;min-width:12rem}
p.more{font-size:.75rem;color:#666;margin:.2rem 0}"""
_TEXT = {"outcome", "basis"}  # columns that may wrap


def _html_table(frame: pd.DataFrame) -> str:
    shown = display_table(frame)
    numeric = {
        name
        for name in frame.columns
        if money.is_money_column(name)
        or str(name).startswith("share_")
        or name == "change_vs_previous"
        or (pd.api.types.is_numeric_dtype(frame[name].dtype)
            and not pd.api.types.is_bool_dtype(frame[name].dtype))
    }  # fmt: skip

    def cell(tag: str, name: object, text: object) -> str:
        css = ' class="num"' if name in numeric else ' class="text"' if name in _TEXT else ""
        return f"<{tag}{css}>{html.escape(str(text))}</{tag}>"

    head = "".join(cell("th", c, str(c).replace("_", " ")) for c in shown.columns)
    body = "".join(
        "<tr>"
        + "".join(cell("td", c, v) for c, v in zip(shown.columns, row, strict=True))
        + "</tr>"
        for row in shown.itertuples(index=False)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _html(report: CostReport, images: dict[str, bytes]) -> str:
    cards = "".join(
        f'<div class="card"><div class="label">{html.escape(label)}</div>'
        f'<div class="value">{html.escape(value)}</div>'
        f'<div class="note">{html.escape(note)}</div></div>'
        for label, value, note in summary(report)
    )
    figures = "".join(
        f'<img src="data:image/png;base64,{base64.b64encode(png).decode()}" '
        f'alt="{_CHART_TITLES[stem]}" width="{charts.SIZE_PX[0]}" height="{charts.SIZE_PX[1]}">'
        for stem, png in images.items()
    )
    sections = []
    for stem, table in report.tables().items():
        if stem not in _TITLES:
            continue
        page = _page_table(stem, table)
        body = f"<p><em>{_empty_note(report, stem)}</em></p>" if table.empty else _html_table(page)
        more = (
            f'<p class="more">{len(table) - PAGE_ROWS:,} more rows in {stem}.csv</p>'
            if len(table) > PAGE_ROWS else ""
        )  # fmt: skip
        sections.append(f"<section><h2>{html.escape(_TITLES[stem])}</h2>{body}{more}</section>")
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>Cost report</title><style>{_CSS}</style></head><body>"
        f'<h1>Cost report</h1><p class="sub">{html.escape(_subtitle(report.options))}</p>'
        f'<div class="summary">{cards}</div><div class="charts">{figures}</div>'
        f"{''.join(sections)}</body></html>\n"
    )


def write_steps(formats: Iterable[str]) -> int:
    """The progress steps `write_report` reports for `formats` (charts, CSV, HTML)."""
    chosen = set(formats)
    return len(_CHART_TITLES) + ("csv" in chosen) + ("html" in chosen)


def write_report(
    report: CostReport,
    out_dir: Path,
    formats: Iterable[str] = FORMATS,
    progress: Progress | None = None,
) -> list[Path]:
    """Write charts (PNG) and the tables in `formats`; return the files written."""
    chosen = set(formats)
    unknown = chosen - set(FORMATS)
    if unknown:
        raise ValueError(f"unknown format(s): {', '.join(sorted(unknown))}")
    out_dir.mkdir(parents=True, exist_ok=True)
    images: dict[str, bytes] = {}
    pngs: dict[str, Path] = {}
    for stem, fig in build_charts(report).items():
        if progress:
            progress(f"drawing {stem}")
        images[stem] = charts.png_bytes(fig)
        pngs[stem] = out_dir / f"{stem}.png"
        pngs[stem].write_bytes(images[stem])
    written = list(pngs.values())
    if "csv" in chosen:
        if progress:
            progress("writing CSV tables")
        for stem, table in report.exact.items():
            path = out_dir / f"{stem}.csv"
            _exact_csv(table).to_csv(path, index=False)
            written.append(path)
    if "md" in chosen:
        path = out_dir / "report.md"
        path.write_text(_markdown(report, pngs), encoding="utf-8")
        written.append(path)
    if "html" in chosen:
        if progress:
            progress("writing the HTML page")
        path = out_dir / "report.html"
        path.write_text(_html(report, images), encoding="utf-8")
        written.append(path)
    return written
