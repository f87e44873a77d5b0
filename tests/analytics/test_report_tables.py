"""Tables that do not mislead: every day a row, weeks that say their length, money as floats
that plot, cache savings that say why they are empty, a forecast with a range, one call."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import matplotlib
import pandas as pd
import pytest
from matplotlib import pyplot as plt

from app import analytics
from app.analytics import load, report, sources
from app.analytics.report import display_table
from tests.analytics.seeding import SPEC
from tests.support.database import FreshDatabase, make_settings

BEFORE = 3  # days without usage before the seed starts
MONEY_FRAMES = ("users", "daily", "weekly", "top_conversations", "user_days", "app_forecast")


@pytest.fixture(scope="module")
def built(seeded_db: FreshDatabase) -> report.CostReport:
    """Three empty days before the seed, its 20 days, and the window's end as now."""
    options = report.ReportOptions(
        since=SPEC.start - timedelta(days=BEFORE), until=SPEC.end, now=SPEC.end
    )
    return report.build_report(sources.PostgresSource(seeded_db.dsn), options)


@pytest.fixture(autouse=True)
def _close_figures() -> object:
    matplotlib.use("Agg")
    yield None
    plt.close("all")


def test_report_daily_has_a_zero_row_for_every_day_without_usage(
    built: report.CostReport,
) -> None:
    days = pd.date_range(SPEC.start.date() - timedelta(days=BEFORE), periods=SPEC.days + BEFORE)

    assert built.daily["day"].tolist() == list(days)
    empty = built.daily.head(BEFORE)
    assert (empty["requests"] == 0).all() and (empty["cost_usd"] == 0.0).all()
    assert (empty["active_users"] == 0).all()
    assert sum(built.exact["daily"]["cost_usd"]) == built.totals["cost_usd"]


def test_report_user_days_has_every_user_on_every_day(built: report.CostReport) -> None:
    user_days = built.user_days

    assert len(user_days) == user_days["user_id"].nunique() * (SPEC.days + BEFORE)
    assert (user_days[user_days["requests"] == 0]["cost_usd"] == 0.0).all()
    assert sum(built.exact["user_days"]["cost_usd"]) == built.totals["cost_usd"]


def test_report_weeks_say_how_many_days_they_have_and_compare_only_complete_weeks(
    built: report.CostReport,
) -> None:
    weekly = built.weekly

    assert weekly["days"].sum() == SPEC.days + BEFORE
    assert weekly["complete"].tolist() == [d == 7 for d in weekly["days"]]
    for i in range(len(weekly)):
        comparable = i > 0 and weekly["complete"].iloc[i] and weekly["complete"].iloc[i - 1]
        assert pd.isna(weekly["change_vs_previous"].iloc[i]) != comparable, weekly
    assert weekly["cost_per_day_usd"].round(6).tolist() == [
        round(c / d, 6) for c, d in zip(weekly["cost_usd"], weekly["days"], strict=True)
    ]


@pytest.mark.parametrize(
    "loader",
    [load.load_per_user, load.load_per_day_model, load.load_per_day_status,
     load.load_conversation_summary, load.load_top_conversations, load.load_user_days],
)  # fmt: skip
def test_load_frames_hold_money_as_floats_that_plot(
    seeded_db: FreshDatabase, loader: object
) -> None:
    frame = loader(sources.PostgresSource(seeded_db.dsn), load.Window(SPEC.start, SPEC.end))  # type: ignore[operator]
    money = [c for c in frame.columns if analytics.money.is_money_column(c)]

    assert money and all(frame[c].dtype == "float64" for c in money)
    assert frame.plot() is not None  # "no numeric data to plot" while money was Decimal objects
    exact = loader(  # type: ignore[operator]
        sources.PostgresSource(seeded_db.dsn), load.Window(SPEC.start, SPEC.end), exact=True
    )
    assert all(isinstance(v, Decimal) for c in money for v in exact[c].dropna())


def test_report_every_frame_plots_even_when_the_window_is_empty(
    built: report.CostReport, seeded_db: FreshDatabase
) -> None:
    nothing = report.build_report(
        sources.PostgresSource(seeded_db.dsn),
        report.ReportOptions(since=datetime(2001, 1, 1, tzinfo=UTC),
                             until=datetime(2001, 1, 8, tzinfo=UTC)),
    )  # fmt: skip

    for each in (built, nothing):
        for stem, frame in {**each.tables(), "user_days": each.user_days}.items():
            if stem != "daily_by_model":
                assert frame.plot() is not None, stem
                plt.close("all")


def test_report_without_prices_says_why_cache_savings_are_empty(
    built: report.CostReport,
) -> None:
    savings = built.cache_savings

    assert not built.priced and not savings.empty
    assert savings["note"].str.startswith("not priced").all()
    assert savings["cache_read_tokens"].sum() > 0  # the tokens are still there
    assert savings["net_savings_usd"].isna().all()  # not $0: unknown


def test_cost_report_one_call_reads_source_prices_and_budgets_from_the_settings(
    seeded_db: FreshDatabase,
) -> None:
    settings = make_settings(database_url=seeded_db.dsn, daily_budget_usd=Decimal("1"))

    built = analytics.cost_report(since=SPEC.start, until=SPEC.end.isoformat(), settings=settings)

    assert built.priced and built.cache_savings["net_savings_usd"].notna().all()
    assert built.cache_savings["net_savings_usd"].sum() > 0
    assert built.options.daily_budget == Decimal("1") and not built.budget_breaches.empty
    assert built.totals["requests"] == SPEC.requests
    facts = {label: value for label, value, _ in report.summary(built)}
    assert facts["Cache saved"].startswith("$")


def test_cost_report_for_one_user_by_email_names_them(seeded_db: FreshDatabase) -> None:
    source = sources.PostgresSource(seeded_db.dsn)
    email = str(load.load_per_user(source, load.Window(SPEC.start, SPEC.end))["email"].iloc[0])

    built = analytics.cost_report(
        source, since=SPEC.start, until=SPEC.end, user=email.upper(), settings=make_settings()
    )

    assert built.users["email"].tolist() == [email]
    assert email in report.subtitle(built.options, built.user_email).lower()
    assert set(report.build_charts(built)) == {
        "daily_cost_by_model", "cost_over_time", "month_projection"
    }  # fmt: skip


def test_report_forecast_shows_a_range_and_a_finished_month_says_actual(
    seeded_db: FreshDatabase,
) -> None:
    source = sources.PostgresSource(seeded_db.dsn)
    running = report.build_report(
        source, report.ReportOptions(since=SPEC.start, until=SPEC.end, now=SPEC.end)
    )
    november = report.ReportOptions(
        since=datetime(2026, 11, 1, tzinfo=UTC), until=datetime(2026, 12, 1, tzinfo=UTC),
        now=datetime(2026, 12, 5, tzinfo=UTC),
    )  # fmt: skip
    finished = report.build_report(source, november)

    ahead = running.exact["app_forecast"].iloc[0]
    assert ahead["low_usd"] < ahead["projected_month_usd"] < ahead["high_usd"]
    label, value, note = next(c for c in report.summary(running) if c[0].startswith("Forecast"))
    assert "range $" in note
    done = finished.exact["app_forecast"].iloc[0]
    assert done["basis"].startswith("actual")
    assert done["projected_month_usd"] == done["mtd_usd"] == finished.totals["cost_usd"]
    labels = [c[0] for c in report.summary(finished)]
    assert "November 2026 (actual)" in labels and not any(x.startswith("Forecast") for x in labels)


def test_display_table_shows_full_conversation_ids(built: report.CostReport) -> None:
    shown = display_table(built.top_conversations)

    assert (
        shown["conversation_id"].tolist()
        == built.top_conversations["conversation_id"].head(len(shown)).tolist()
    )
    assert all(len(v) == 36 for v in shown["conversation_id"])


def test_report_options_observed_days_stop_at_now() -> None:
    options = report.ReportOptions(
        since=datetime(2026, 11, 1, tzinfo=UTC), until=datetime(2026, 12, 1, tzinfo=UTC),
        now=datetime(2026, 11, 3, 10, tzinfo=UTC),
    )  # fmt: skip

    assert [d.day for d in options.observed_days()] == [1, 2, 3]  # not the 27 days ahead
    later = dataclasses.replace(options, now=datetime(2027, 1, 1, tzinfo=UTC))
    assert len(later.observed_days()) == 30


def test_shaping_functions_take_the_float_frames_and_answer_exactly(
    seeded_db: FreshDatabase,
) -> None:
    source, window = sources.PostgresSource(seeded_db.dsn), load.Window(SPEC.start, SPEC.end)
    floats = load.load_per_user(source, window)
    exact = load.load_per_user(source, window, exact=True)

    from_floats = analytics.user_table(floats)  # 'float' object has no attribute 'quantize'

    pd.testing.assert_frame_equal(from_floats, analytics.user_table(exact))
    assert analytics.totals(floats) == analytics.totals(exact)
    per_day = load.load_per_day_model(source, window)
    assert (
        analytics.daily_totals(per_day)["cost_usd"].tolist()
        == analytics.daily_totals(load.load_per_day_model(source, window, exact=True))[
            "cost_usd"
        ].tolist()
    )
