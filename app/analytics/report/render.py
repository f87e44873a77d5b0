"""Write a report: PNG charts, CSV tables (exact), a Markdown page and one self-contained HTML page.

The HTML page embeds the charts as data: URIs and makes no external requests.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Callable, Iterable
from decimal import Decimal
from pathlib import Path

import pandas as pd

from app.analytics import charts, money
from app.analytics.report.build import CostReport
from app.analytics.report.charts import CHART_TITLES, build_charts, subtitle
from app.analytics.report.display import PAGE_ROWS, display_table, summary

Progress = Callable[[str], None]
FORMATS = ("csv", "html", "md")


def _exact_csv(frame: pd.DataFrame) -> pd.DataFrame:
    """Money as plain decimal strings for CSV ("0.00000000", never "0E-8")."""
    out = frame.copy()
    for name in out.columns:
        if out[name].dtype == object and any(isinstance(v, Decimal) for v in out[name]):
            out[name] = [f"{v:f}" if isinstance(v, Decimal) else v for v in out[name]]
    return out


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
    "cost_reconciliation": "Provider-reported cost vs our price, by model",
    "cost_mismatches": "Turns whose provider-reported cost differs",
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
    parts = [f"# Cost report\n\n{subtitle(report.options, report.user_email)}\n\n{facts}\n"]
    parts += [f"![{CHART_TITLES[stem]}]({path.name})\n" for stem, path in pngs.items()]
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
_TEXT = {"outcome", "basis", "note"}  # columns that may wrap


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
        f'alt="{CHART_TITLES[stem]}" width="{charts.SIZE_PX[0]}" height="{charts.SIZE_PX[1]}">'
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
    caption = subtitle(report.options, report.user_email)
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>Cost report</title><style>{_CSS}</style></head><body>"
        f'<h1>Cost report</h1><p class="sub">{html.escape(caption)}</p>'
        f'<div class="summary">{cards}</div><div class="charts">{figures}</div>'
        f"{''.join(sections)}</body></html>\n"
    )


def write_steps(formats: Iterable[str]) -> int:
    """The progress steps `write_report` reports for `formats` (charts, CSV, HTML)."""
    chosen = set(formats)
    return len(CHART_TITLES) - 1 + ("csv" in chosen) + ("html" in chosen)  # 3 or 4 charts


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
