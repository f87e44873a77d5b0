"""Pure shaping functions on small hand-made frames; every expected value worked out by hand."""

from __future__ import annotations

from decimal import Decimal as D

import pandas as pd
import pytest

from app.analytics import costs


def _per_user(rows: list[tuple[str, int, int, int, int, int, str]]) -> pd.DataFrame:
    frame = pd.DataFrame(
        rows,
        columns=[
            "user_id", "requests", "tokens_in", "tokens_out", "cache_read_tokens",
            "cache_write_tokens", "cost_usd",
        ],
    )  # fmt: skip
    frame["cost_usd"] = frame["cost_usd"].map(D).astype(object)
    return frame


def _user_days(rows: list[tuple[str, str, int, str]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["user_id", "day", "requests", "cost_usd"])
    frame["day"] = pd.to_datetime(frame["day"])
    frame["cost_usd"] = frame["cost_usd"].map(D).astype(object)
    return frame


def _per_day_model(rows: list[tuple[str, str, str, int, str]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["day", "provider", "model", "requests", "cost_usd"])
    frame["day"] = pd.to_datetime(frame["day"])
    for column in costs.TOKEN_COLUMNS:
        frame[column] = 10
    frame["cost_usd"] = frame["cost_usd"].map(D).astype(object)
    return frame


PER_USER = _per_user([
    ("a", 3, 100, 50, 10, 0, "1.00000000"),
    ("b", 1, 10, 5, 0, 20, "2.50000000"),
    ("c", 0, 0, 0, 0, 0, "0"),
])  # fmt: skip


def test_user_table_orders_by_cost_and_averages_exactly() -> None:
    table = costs.user_table(PER_USER)

    assert table["user_id"].tolist() == ["b", "a", "c"]
    # 1.00 / 3 = 0.333333333... rounds half-up to 8 places; 0 requests average to 0.
    assert table["avg_cost_per_request"].tolist() == [D("2.5"), D("0.33333333"), D("0")]
    assert table["tokens_total"].tolist() == [35, 160, 0]
    assert all(isinstance(v, D) for v in table["avg_cost_per_request"])


def test_totals_sum_money_exactly() -> None:
    frame = _per_user([("a", 1, 1, 1, 0, 0, "0.10000000"), ("b", 2, 1, 1, 0, 0, "0.20000000")])

    result = costs.totals(frame)

    assert result["cost_usd"] == D("0.3")  # not 0.30000000000000004
    assert result == {
        "users": 2, "requests": 3, "tokens_in": 2, "tokens_out": 2, "cache_read_tokens": 0,
        "cache_write_tokens": 0, "cost_usd": D("0.3"),
    }  # fmt: skip


def test_top_spenders_keeps_n_and_gives_share_of_total() -> None:
    top = costs.top_spenders(PER_USER, n=2)

    assert top["user_id"].tolist() == ["b", "a"]
    assert top["share_of_cost"].tolist() == pytest.approx([2.5 / 3.5, 1.0 / 3.5])


def test_daily_cost_by_model_fills_missing_days_and_models_with_zero() -> None:
    frame = _per_day_model([
        ("2026-11-01", "anthropic", "haiku", 2, "0.50000000"),
        ("2026-11-01", "openai", "mini", 1, "0.25000000"),
        ("2026-11-03", "anthropic", "haiku", 1, "1.00000000"),
    ])  # fmt: skip
    days = pd.date_range("2026-11-01", "2026-11-03", freq="D")

    wide = costs.daily_cost_by_model(frame, days)

    assert wide.columns.tolist() == ["haiku", "mini"]  # most expensive model first
    assert wide.index.tolist() == days.tolist()
    assert wide["haiku"].tolist() == [D("0.5"), D("0"), D("1")]
    assert wide["mini"].tolist() == [D("0.25"), D("0"), D("0")]


def test_model_summary_sums_days_per_model_with_share() -> None:
    frame = _per_day_model([
        ("2026-11-01", "anthropic", "haiku", 2, "0.50000000"),
        ("2026-11-02", "anthropic", "haiku", 3, "1.00000000"),
        ("2026-11-01", "openai", "mini", 1, "0.50000000"),
    ])  # fmt: skip

    summary = costs.model_summary(frame)

    assert summary["model"].tolist() == ["haiku", "mini"]
    assert summary["requests"].tolist() == [5, 1]
    assert summary["cost_usd"].tolist() == [D("1.5"), D("0.5")]
    assert summary["share_of_cost"].tolist() == pytest.approx([0.75, 0.25])


def test_daily_totals_adds_models_per_day_and_counts_active_users() -> None:
    frame = _per_day_model([
        ("2026-11-02", "anthropic", "haiku", 3, "1.00000000"),
        ("2026-11-01", "anthropic", "haiku", 2, "0.50000000"),
        ("2026-11-01", "openai", "mini", 1, "0.25000000"),
    ])  # fmt: skip

    days = _user_days([
        ("a", "2026-11-01", 2, "0.50000000"), ("b", "2026-11-01", 1, "0.25000000"),
        ("a", "2026-11-02", 3, "1.00000000"),
    ])  # fmt: skip

    daily = costs.daily_totals(frame, days)

    assert daily["day"].dt.day.tolist() == [1, 2]
    assert daily["active_users"].tolist() == [2, 1]
    assert daily["requests"].tolist() == [3, 3]
    assert daily["cost_usd"].tolist() == [D("0.75"), D("1")]


def test_budget_breaches_flags_days_and_months_strictly_over() -> None:
    days = _user_days([
        ("a", "2026-11-01", 5, "3.00000000"),  # over the $2 daily budget by 1
        ("a", "2026-11-02", 1, "2.00000000"),  # exactly at it: not over
        ("a", "2026-12-01", 1, "0.50000000"),
        ("b", "2026-11-05", 2, "1.50000000"),
    ])  # fmt: skip

    breaches = costs.budget_breaches(days, daily_budget=D("2"), monthly_budget=D("4"))

    assert breaches.to_dict("records") == [
        {"user_id": "a", "period": "day", "start": pd.Timestamp("2026-11-01"),
         "spend_usd": D("3"), "budget_usd": D("2"), "over_by_usd": D("1")},
        # a's November: 3 + 2 = 5 > 4; December 0.5 and b's 1.5 stay under.
        {"user_id": "a", "period": "month", "start": pd.Timestamp("2026-11-01"),
         "spend_usd": D("5"), "budget_usd": D("4"), "over_by_usd": D("1")},
    ]  # fmt: skip


def test_budget_breaches_with_budgets_off_is_empty() -> None:
    days = _user_days([("a", "2026-11-01", 5, "300.00000000")])

    assert costs.budget_breaches(days, daily_budget=D("0"), monthly_budget=None).empty


def test_anomalies_flag_a_spike_against_the_users_median_and_mad() -> None:
    # a: eight days at 1,1,2,2,2,3,3 and a 40 spike. Median 2; deviations 1,1,0,0,0,1,1,38:
    # MAD = median(0,0,0,1,1,1,1,38) = 1; z(40) = 0.6745 x 38 / 1 = 25.631.
    rows = [("a", f"2026-11-0{i + 1}", 1, c) for i, c in enumerate("1122233")]
    rows.append(("a", "2026-11-08", 30, "40"))
    # b: the same shape but too few active days to have a baseline.
    rows += [("b", "2026-11-01", 1, "1"), ("b", "2026-11-02", 1, "50")]
    flagged = costs.anomalies(_user_days(rows))

    assert flagged["user_id"].tolist() == ["a"]
    assert flagged.loc[0, "day"] == pd.Timestamp("2026-11-08")
    assert flagged.loc[0, "baseline_median_usd"] == D("2")
    assert flagged.loc[0, "robust_z"] == pytest.approx(0.6745 * 38)


def test_anomalies_fall_back_to_mean_deviation_when_mad_is_zero() -> None:
    # Seven days at 2 and one at 10: MAD = 0; meanAD = 8/8 = 1; z = 8 / 1.253314 = 6.383.
    rows = [("a", f"2026-11-0{i + 1}", 1, "2") for i in range(7)]
    rows.append(("a", "2026-11-08", 1, "10"))

    flagged = costs.anomalies(_user_days(rows))

    assert flagged["robust_z"].tolist() == pytest.approx([8 / 1.253314])


def test_anomalies_ignore_spikes_below_the_minimum_cost() -> None:
    rows = [("a", f"2026-11-0{i + 1}", 1, "0.01") for i in range(7)]
    rows.append(("a", "2026-11-08", 1, "0.90"))

    assert costs.anomalies(_user_days(rows), min_cost_usd=D("1")).empty
    assert len(costs.anomalies(_user_days(rows), min_cost_usd=D("0.5"))) == 1


def test_budget_breaches_use_each_users_override_before_the_default() -> None:
    days = _user_days([
        ("a", "2026-11-01", 1, "3.00000000"),  # a's own cap is 5: not over
        ("b", "2026-11-01", 1, "3.00000000"),  # b has 0 = no cap at all: not over
        ("c", "2026-11-01", 1, "3.00000000"),  # c's override is null: the default 2 applies
        ("d", "2026-11-01", 1, "1.50000000"),  # d's cap is 1 although the default is higher
    ])  # fmt: skip
    limits = pd.DataFrame({
        "user_id": ["a", "b", "c", "d"],
        "daily_budget_usd": pd.Series([D("5"), D("0"), None, D("1")], dtype=object),
        "monthly_budget_usd": pd.Series([None, None, None, None], dtype=object),
    })  # fmt: skip

    breaches = costs.budget_breaches(days, daily_budget=D("2"), limits=limits)

    assert breaches[["user_id", "budget_usd", "over_by_usd"]].to_dict("records") == [
        {"user_id": "c", "budget_usd": D("2"), "over_by_usd": D("1")},
        {"user_id": "d", "budget_usd": D("1"), "over_by_usd": D("0.5")},
    ]


def test_budget_breaches_override_applies_even_without_a_default() -> None:
    days = _user_days([("a", "2026-11-01", 1, "3.00000000"), ("a", "2026-11-02", 1, "3")])
    limits = pd.DataFrame({
        "user_id": ["a"], "daily_budget_usd": pd.Series([None], dtype=object),
        "monthly_budget_usd": pd.Series([D("5")], dtype=object),
    })  # fmt: skip

    breaches = costs.budget_breaches(days, limits=limits)

    assert breaches[["period", "spend_usd", "over_by_usd"]].to_dict("records") == [
        {"period": "month", "spend_usd": D("6"), "over_by_usd": D("1")}
    ]
