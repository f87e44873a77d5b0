"""The month-end projection's method (`app.analytics.projection`) on constructed user-days."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal as D

import pandas as pd

from app.analytics import projection


def _days(costs: dict[str, str], user: str = "u1") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": user,
            "day": pd.to_datetime(list(costs)),
            "cost_usd": pd.Series([D(c) for c in costs.values()], dtype=object),
        }
    )


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_projection_partial_first_day_is_not_a_rate_day_but_counts_as_spend() -> None:
    # Data from Nov 10 12:00: the 10th is partial (a big half day), 11-13 complete at $1.
    days = _days({"2026-11-10": "9", "2026-11-11": "1", "2026-11-12": "1", "2026-11-13": "1"})
    cover = projection.Coverage(_at("2026-11-10T12:00"), _at("2026-11-14T00:00"))

    row = projection.month_projection(days, cover).iloc[0]

    assert row["complete_days"] == 3 and row["partial_days"] == 1
    assert row["mtd_usd"] == D("12")
    assert row["daily_rate_usd"] == D("1")
    # complete days 3 + partial max(9, 1) + 1 x 26 unobserved days (1-9 and 14-30)
    assert row["projected_month_usd"] == D("38")
    assert projection.partial_days(days["day"], cover).tolist() == [True, False, False, False]


def test_projection_anomaly_day_does_not_drive_the_rate() -> None:
    costs = {f"2026-11-{d:02d}": "2" for d in range(1, 11)} | {"2026-11-05": "80"}
    cover = projection.Coverage(_at("2026-11-01T00:00"), _at("2026-11-11T00:00"))

    row = projection.month_projection(_days(costs), cover).iloc[0]

    assert row["daily_rate_usd"] == D("2")  # the $80 day is trimmed, the mean would be $9.80
    assert row["mtd_usd"] == D("98")
    assert row["projected_month_usd"] == D("98") + D("2") * 20


def test_projection_fewer_than_three_complete_days_says_not_enough_data() -> None:
    # The README's window: since Nov 1, until tomorrow, on Dec 2 at 10:00 -> December has
    # one complete day (Dec 1) and one running day.
    days = _days({"2026-11-30": "5", "2026-12-01": "0.44", "2026-12-02": "0.10"})
    cover = projection.coverage(_at("2026-11-01"), _at("2026-12-03"), now=_at("2026-12-02T10:00"))

    row = projection.month_projection(days, cover).iloc[0]

    assert row["month"] == pd.Timestamp("2026-12-01")
    assert row["complete_days"] == 1 and row["partial_days"] == 1
    assert row["projected_month_usd"] is None and row["daily_rate_usd"] is None
    assert row["mtd_usd"] == D("0.54")
    assert "not enough data" in row["basis"]


def test_projection_window_across_a_month_boundary_projects_the_last_complete_days_month() -> None:
    # Nov 25 .. Dec 5 (exclusive): the trailing days of November must not feed December's rate.
    costs = {f"2026-11-{d}": "10" for d in range(25, 31)} | {
        f"2026-12-0{d}": "1" for d in range(1, 5)
    }
    cover = projection.Coverage(_at("2026-11-25"), _at("2026-12-05"))

    user = projection.month_projection(_days(costs), cover).iloc[0]
    app = projection.app_projection(_days(costs), cover).iloc[0]

    assert user["month"] == pd.Timestamp("2026-12-01")
    assert user["complete_days"] == 4 and user["mtd_usd"] == D("4")
    assert user["daily_rate_usd"] == D("1")
    assert user["projected_month_usd"] == D("31")
    assert app["user_id"] == "all users" and app["projected_month_usd"] == D("31")
    november = projection.month_projection(_days(costs), cover, month=date(2026, 11, 1)).iloc[0]
    assert november["complete_days"] == 6 and november["daily_rate_usd"] == D("10")


def test_app_projection_uses_daily_totals_of_every_user() -> None:
    both = pd.concat(
        [
            _days({"2026-11-01": "1", "2026-11-02": "1", "2026-11-03": "1"}, "a"),
            _days({"2026-11-01": "2", "2026-11-02": "2", "2026-11-03": "50"}, "b"),
        ],
        ignore_index=True,
    )
    cover = projection.Coverage(_at("2026-11-01"), _at("2026-11-04"))

    app = projection.app_projection(both, cover).iloc[0]
    users = projection.month_projection(both, cover)

    assert app["daily_rate_usd"] == D("3")  # median of 3, 3, 51
    assert app["mtd_usd"] == D("57")
    assert list(users["user_id"]) == ["b", "a"]


def test_trimmed_mean_drops_one_day_each_end_up_to_ten_days() -> None:
    assert projection.trimmed_mean([D(1), D(2), D(100)]) == D(2)
    assert projection.trimmed_mean([D(1)] * 9 + [D(1000)]) == D(1)
    assert projection.trimmed_mean([D(v) for v in range(1, 21)]) == D("10.5")
