"""The analyst views (`app.analytics.views`) on constructed aggregates."""

from __future__ import annotations

import math
from datetime import datetime
from decimal import Decimal as D

import pandas as pd

from app.analytics import views
from app.core.domain import Price, Usage

# Per million tokens: input $3, cache read $0.30, cache write $3.75 (Anthropic-like).
RATES = {"input": D(3), "read": D("0.3"), "write": D("3.75")}


def fake_price(provider: str, model: str, usage: Usage, *, when: datetime | None = None) -> Price:
    cost = (
        usage.input_tokens * RATES["input"]
        + usage.cache_read_tokens * RATES["read"]
        + usage.cache_write_tokens * RATES["write"]
    ) / 1_000_000
    return Price(cost_usd=cost, source="test")


def _per_day_model() -> pd.DataFrame:
    return pd.DataFrame({
        "day": pd.to_datetime(["2026-11-02", "2026-11-03", "2026-11-09", "2026-11-10"]),
        "provider": ["anthropic", "anthropic", "anthropic", "openai"],
        "model": ["claude-sonnet-4-5", "claude-sonnet-4-5", "claude-sonnet-4-5", "gpt-4o"],
        "requests": [10, 10, 30, 50],
        "tokens_in": [100, 100, 100, 100], "tokens_out": [50, 50, 50, 50],
        "cache_read_tokens": [1_000_000, 1_000_000, 0, 0],
        "cache_write_tokens": [100_000, 0, 0, 0],
        "cost_usd": pd.Series([D("1"), D("2"), D("3"), D("4")], dtype=object),
    })  # fmt: skip


def test_cache_savings_reads_at_input_price_minus_read_price_net_of_write_premium() -> None:
    table = views.cache_savings(_per_day_model(), fake_price)

    sonnet = table.set_index("model").loc["claude-sonnet-4-5"]
    assert sonnet["cache_read_tokens"] == 2_000_000
    assert sonnet["read_cost_usd"] == D("0.6")
    assert sonnet["read_savings_usd"] == D("5.4")  # 2M x ($3 - $0.30) / 1M
    assert sonnet["write_premium_usd"] == D("0.075")  # 100k x ($3.75 - $3) / 1M
    assert sonnet["net_savings_usd"] == D("5.325")
    assert table.set_index("model").loc["gpt-4o", "net_savings_usd"] == 0


def test_model_mix_shares_of_requests_tokens_and_cost_add_up_to_one() -> None:
    mix = views.model_mix(_per_day_model())

    assert mix["model"].tolist() == ["claude-sonnet-4-5", "gpt-4o"]
    assert mix["share_of_requests"].tolist() == [0.5, 0.5]
    assert math.isclose(mix["share_of_cost"].sum(), 1.0)
    assert mix.loc[0, "cost_usd"] == D("6")


def test_weekly_trend_sums_weeks_marks_cut_ones_and_compares_with_the_week_before() -> None:
    user_days = pd.DataFrame({
        "user_id": ["a", "b", "a"],
        "day": pd.to_datetime(["2026-11-02", "2026-11-03", "2026-11-09"]),
        "requests": [1, 1, 1],
    })  # fmt: skip
    days = pd.date_range("2026-11-02", "2026-11-10")  # a whole week, then two days of one

    weekly = views.weekly_trend(_per_day_model(), user_days, {pd.Timestamp("2026-11-10")}, days)

    assert weekly["week"].tolist() == [pd.Timestamp("2026-11-02"), pd.Timestamp("2026-11-09")]
    assert weekly["cost_usd"].tolist() == [D("3"), D("7")]  # not NaN: aligned on the weeks
    assert weekly["active_users"].tolist() == [2, 1]
    assert weekly["days"].tolist() == [7, 2]  # the days the window holds, usage or not
    assert weekly["complete"].tolist() == [True, False]  # 2 days; a partial day
    assert weekly["cost_per_day_usd"].tolist() == [D("0.42857143"), D("3.5")]
    # 2 days against 7 is not a change of +133 %: no comparison with a cut week.
    assert weekly["change_vs_previous"].isna().all()


def test_weekly_trend_compares_only_complete_weeks() -> None:
    per_day = pd.DataFrame({
        "day": pd.to_datetime(["2026-11-02", "2026-11-10", "2026-11-17"]),
        "provider": "openai", "model": "gpt-4o", "requests": [1, 1, 1],
        "tokens_in": 1, "tokens_out": 1, "cache_read_tokens": 0, "cache_write_tokens": 0,
        "cost_usd": pd.Series([D("2"), D("3"), D("1")], dtype=object),
    })  # fmt: skip
    user_days = per_day[["day"]].assign(user_id="a", requests=1)
    days = pd.date_range("2026-11-02", "2026-11-18")  # two whole weeks, then three days

    weekly = views.weekly_trend(per_day, user_days, set(), days)

    assert weekly["days"].tolist() == [7, 7, 3]
    assert weekly["complete"].tolist() == [True, True, False]
    assert math.isnan(weekly.loc[0, "change_vs_previous"])  # nothing before it
    assert math.isclose(weekly.loc[1, "change_vs_previous"], 0.5)  # $2 -> $3
    assert math.isnan(weekly.loc[2, "change_vs_previous"])  # 3 days: not comparable
    assert weekly.loc[2, "cost_per_day_usd"] == D("0.33333333")  # comparable per day


def test_unit_costs_per_active_user_and_per_message() -> None:
    per_user = pd.DataFrame({
        "user_id": ["a", "b", "c"], "requests": [3, 1, 0],
        "cost_usd": pd.Series([D("0.3"), D("0.1"), D("0")], dtype=object),
    })  # fmt: skip

    row = views.unit_costs(per_user).iloc[0]

    assert (row["active_users"], row["messages"]) == (2, 4)
    assert row["cost_per_active_user"] == D("0.2")
    assert row["cost_per_request"] == D("0.1")


def test_wasted_spend_lists_failed_outcomes_first_with_their_share() -> None:
    per_day_status = pd.DataFrame({
        "day": pd.to_datetime(["2026-11-01"] * 4),
        "status": ["completed", "partial", "error", "abandoned"],
        "requests": [90, 5, 3, 2], "tokens_in": [0] * 4, "tokens_out": [0] * 4,
        "cost_usd": pd.Series([D("9"), D("0.5"), D("0.3"), D("0.2")], dtype=object),
        "estimated_requests": [0, 5, 3, 2],
    })  # fmt: skip

    table = views.wasted_spend(per_day_status)

    assert table["status"].tolist() == ["partial", "error", "abandoned", "completed"]
    assert table["wasted"].tolist() == [True, True, True, False]
    assert sum(table[table["wasted"]]["cost_usd"]) == D("1.0")
    assert "disconnected" in table.loc[0, "outcome"]
    assert math.isclose(table["share_of_cost"].sum(), 1.0)
