"""Charts are real PNGs of the fixed size, drawn from the shapes `costs` produces."""

from __future__ import annotations

import struct
from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path

import pandas as pd
import pytest
from matplotlib.figure import Figure

from app.analytics import charts, costs, money, projection

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from the IHDR chunk, after checking the PNG signature."""
    head = path.read_bytes()[:24]
    assert head[:8] == PNG_SIGNATURE and head[12:16] == b"IHDR"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def _per_user(n: int) -> pd.DataFrame:
    return pd.DataFrame({
        "user_id": [f"{i:08d}-0000-4000-8000-000000000000" for i in range(n)],
        "email": [f"user{i}@example.test" if i % 3 else None for i in range(n)],
        "cost_usd": pd.Series([D(i * i) / 7 for i in range(n)], dtype=object),
    })  # fmt: skip


def _user_days() -> pd.DataFrame:
    days = pd.date_range("2026-11-01", "2026-11-12", freq="D")
    return pd.DataFrame({
        "user_id": "u", "day": days, "requests": 3,
        "cost_usd": pd.Series([D("1.25")] * len(days), dtype=object),
    })  # fmt: skip


def _figures() -> dict[str, Figure]:
    per_day_model = pd.DataFrame({
        "day": pd.to_datetime(["2026-11-01", "2026-11-01", "2026-11-03"]),
        "model": ["claude-sonnet-4-5", "gpt-4o", "claude-sonnet-4-5"],
        "cost_usd": pd.Series([D("12.5"), D("3.25"), D("20")], dtype=object),
    })  # fmt: skip
    wide = costs.daily_cost_by_model(per_day_model, pd.date_range("2026-11-01", "2026-11-04"))
    cover = projection.Coverage(
        datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 12, 15, tzinfo=UTC)
    )
    forecast = projection.month_projection(_user_days(), cover).iloc[0]
    partial = {pd.Timestamp("2026-11-04")}
    return {
        "daily": charts.daily_cost_chart(wide, "test window", partial),
        "top": charts.top_users_chart(costs.top_spenders(_per_user(30), 20)),
        "distribution": charts.cost_distribution_chart(_per_user(200)),
        "projection": charts.month_projection_chart(
            _user_days(), forecast, label="user@example.test", monthly_budget=D("30")
        ),
        "one_user": charts.user_cost_chart(_user_days(), "user@example.test", "test window"),
    }


@pytest.mark.parametrize("name", ["daily", "top", "distribution", "projection"])
def test_chart_saves_a_png_of_the_fixed_size_with_title_and_labels(
    name: str, tmp_path: Path
) -> None:
    fig = _figures()[name]

    path = charts.save_png(fig, tmp_path / f"{name}.png")

    assert png_size(path) == charts.SIZE_PX == (1200, 675)
    ax = fig.axes[0]
    assert fig.get_suptitle()
    assert ax.get_xlabel() and ax.get_ylabel()
    assert "USD" in ax.get_xlabel() + ax.get_ylabel()


def test_charts_of_empty_frames_still_render(tmp_path: Path) -> None:
    empty_users = _per_user(0)
    empty_days = costs.daily_cost_by_model(
        pd.DataFrame({"day": pd.to_datetime([]), "model": [], "cost_usd": []}),
        pd.date_range("2026-11-01", "2026-11-03"),
    )

    for i, fig in enumerate([
        charts.daily_cost_chart(empty_days),
        charts.top_users_chart(empty_users),
        charts.cost_distribution_chart(empty_users),
    ]):  # fmt: skip
        assert png_size(charts.save_png(fig, tmp_path / f"{i}.png")) == charts.SIZE_PX


def test_top_users_chart_labels_bars_with_email_or_short_id_biggest_on_top() -> None:
    fig = charts.top_users_chart(costs.top_spenders(_per_user(4), 4))

    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    ticks = list(fig.axes[0].get_yticks())
    top_label = labels[ticks.index(max(ticks))]
    assert top_label == "user 00000003"  # the biggest spender has no email: its short id
    assert "user2@example.test" in labels


@pytest.mark.parametrize(
    ("amount", "text"),
    [(D("1234.5"), "$1,234.50"), (D("178.08232590"), "$178.08"), (D("0"), "$0.00"),
     (D("-2"), "-$2.00"), (D("0.004"), "$0.0040"), (D("0.0073"), "$0.0073"),
     (D("0.00000001"), "$0.00000001"), (D("-0.00321"), "-$0.0032"), (1e-10, "<$0.00000001")],
)  # fmt: skip
def test_format_usd_rounds_for_people(amount: D, text: str) -> None:
    assert money.format_usd(amount) == text


def test_format_column_uses_one_number_of_decimals_for_every_row() -> None:
    per_request = pd.Series([0.0, 0.007259, 0.0123, 1.5])
    totals = pd.Series([178.0823259, 0.44, 0.0])

    assert money.format_column(per_request) == ["$0.0000", "$0.0073", "$0.0123", "$1.5000"]
    assert money.format_column(totals) == ["$178.08", "$0.44", "$0.00"]


def test_projection_chart_without_enough_data_draws_month_to_date_only(tmp_path: Path) -> None:
    cover = projection.Coverage(
        datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 2, 15, tzinfo=UTC)
    )
    forecast = projection.month_projection(_user_days().head(2), cover).iloc[0]

    fig = charts.month_projection_chart(_user_days().head(2), forecast)

    texts = [t.get_text() for t in fig.axes[0].texts]
    assert any("not enough data" in t for t in texts)


@pytest.mark.parametrize("exponent", range(-8, 4))
def test_format_usd_never_shows_zero_for_a_non_zero_amount(exponent: int) -> None:
    for amount in (D(10) ** exponent, D(3) * D(10) ** exponent):
        text = money.format_usd(amount)
        assert text.strip("$<-0.,") != "", text  # a non-zero digit


def test_cost_distribution_chart_counts_whole_users() -> None:
    fig = charts.cost_distribution_chart(_per_user(3))  # 2 spenders: matplotlib would say 0.5
    fig.canvas.draw()  # type: ignore[no-untyped-call]

    ticks = fig.axes[0].get_yticks()
    assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks)


def test_month_projection_chart_draws_the_forecast_as_a_range() -> None:
    cover = projection.Coverage(
        datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 12, 15, tzinfo=UTC)
    )
    days = _user_days().assign(
        cost_usd=pd.Series([D(v) for v in (1, 3, 2, 5, 1, 2, 4, 1, 2, 3, 2, 1)], dtype=object)
    )
    forecast = projection.month_projection(days, cover).iloc[0]

    fig = charts.month_projection_chart(days, forecast)

    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert any(label.startswith("forecast range") for label in labels)
    assert forecast["low_usd"] < forecast["projected_month_usd"] < forecast["high_usd"]
