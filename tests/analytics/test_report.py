"""`write_report`: the files a report consists of, exact CSVs, and pages that show everything."""

from __future__ import annotations

import csv
import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from app.analytics import charts, money, report, sources
from tests.analytics.seeding import SPEC
from tests.analytics.test_charts import png_size
from tests.support.database import FreshDatabase

CHARTS = ["daily_cost_by_model", "top_users", "cost_per_user_distribution", "month_projection"]


@pytest.fixture(scope="module")
def built(seeded_db: FreshDatabase) -> report.CostReport:
    options = report.ReportOptions(
        since=SPEC.start, until=SPEC.end, daily_budget=Decimal("1"), monthly_budget=Decimal("4")
    )
    return report.build_report(sources.PostgresSource(seeded_db.dsn), options)


def test_write_report_all_formats_writes_tables_pages_and_charts(
    built: report.CostReport, tmp_path: Path
) -> None:
    written = report.write_report(built, tmp_path, report.FORMATS)

    names = {p.name for p in written}
    assert {f"{c}.png" for c in CHARTS} <= names
    assert {"report.html", "report.md", "users.csv", "totals.csv", "anomalies.csv"} <= names
    for chart in CHARTS:
        assert png_size(tmp_path / f"{chart}.png") == charts.SIZE_PX
    page = (tmp_path / "report.html").read_text()
    markdown = (tmp_path / "report.md").read_text()
    for chart in CHARTS:
        assert f"]({chart}.png)" in markdown
    assert page.count('<img src="data:image/png;base64,') == len(CHARTS)  # embedded
    assert "Month to date and forecast per user" in page and "Over budget" in page
    for title in ("Cache savings", "Model mix", "Weekly trend", "Spend by outcome",
                  "Cost per active user and per message", "App-wide forecast"):  # fmt: skip
        assert title in page and title in markdown


def test_write_report_html_stands_alone_without_external_requests(
    built: report.CostReport, tmp_path: Path
) -> None:
    report.write_report(built, tmp_path, ["html"])
    for png in tmp_path.glob("*.png"):
        png.unlink()  # mailed on its own

    page = (tmp_path / "report.html").read_text()

    assert not re.search(r"""(src|href)=["']?(?!["']?data:)""", page)
    assert "<script" not in page and "<link" not in page and "url(" not in page
    assert "178.08232590" not in page and " USD" not in page.split("<table")[0]
    for user_id in built.users["user_id"]:
        assert user_id not in page  # users by email (or a short id), never a wrapped UUID


def test_report_summary_says_no_budget_set_without_budgets(seeded_db: FreshDatabase) -> None:
    options = report.ReportOptions(since=SPEC.start, until=SPEC.end)
    built = report.build_report(sources.PostgresSource(seeded_db.dsn), options)

    facts = {label: value for label, value, _ in report.summary(built)}

    assert facts["Budgets"] == "no budget set"
    assert facts["Total cost"] == money.format_usd(built.totals["cost_usd"])
    assert facts["Total cost"].startswith("$") and facts["Total cost"].count(".") == 1


def test_report_frames_are_float_for_pandas_and_exact_tables_decimal(
    built: report.CostReport,
) -> None:
    assert built.daily["cost_usd"].dtype == "float64"
    assert built.users["cost_usd"].dtype == "float64"
    axes = built.daily.plot(x="day", y="cost_usd")  # "no numeric data to plot" before
    assert axes.get_lines()
    assert all(isinstance(v, Decimal) for v in built.exact["users"]["cost_usd"])
    assert sum(built.exact["daily"]["cost_usd"]) == built.totals["cost_usd"]


def test_report_for_one_model_keeps_only_that_model(seeded_db: FreshDatabase) -> None:
    source = sources.PostgresSource(seeded_db.dsn)
    options = report.ReportOptions(since=SPEC.start, until=SPEC.end, model="gpt-4o")

    built = report.build_report(source, options)

    with psycopg.connect(seeded_db.dsn) as conn:
        row = conn.execute(
            "select sum(cost_usd) from public.usage_logs where model = 'gpt-4o'"
        ).fetchone()
    assert row is not None
    assert built.models["model"].tolist() == ["gpt-4o"]
    assert built.totals["cost_usd"] == row[0]


def test_write_report_csv_keeps_money_exact(
    built: report.CostReport, seeded_db: FreshDatabase, tmp_path: Path
) -> None:
    report.write_report(built, tmp_path, ["csv"])

    with (tmp_path / "users.csv").open() as f:
        rows = list(csv.DictReader(f))
    with psycopg.connect(seeded_db.dsn) as conn:
        total = conn.execute("select sum(cost_usd) from public.usage_logs").fetchone()
    assert total is not None
    assert sum(Decimal(r["cost_usd"]) for r in rows) == total[0]
    assert all(len(r["cost_usd"].split(".")[1]) == 8 for r in rows)  # never 0E-8 or floats
    assert not (tmp_path / "report.html").exists()


def test_report_finds_the_seeded_runaway_day_and_budget_breaches(
    built: report.CostReport,
) -> None:
    assert not built.anomalies.empty
    assert (built.anomalies["robust_z"] > 3.5).all()
    assert set(built.budget_breaches["period"]) == {"day", "month"}
    assert (built.budget_breaches["over_by_usd"] > 0).all()


def test_write_report_unknown_format_is_refused(built: report.CostReport, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="pdf"):
        report.write_report(built, tmp_path, ["pdf"])


def test_report_options_as_of_is_the_last_day_inside_the_window() -> None:
    options = report.ReportOptions(
        since=datetime(2026, 11, 1, tzinfo=UTC), until=datetime(2026, 12, 1, tzinfo=UTC)
    )

    assert options.as_of.isoformat() == "2026-11-30"
