"""Cost charts as matplotlib Figures, drawn off-screen and saved as PNGs of one fixed size.

Figures are built with `matplotlib.figure.Figure` (the Agg canvas), never pyplot, so nothing
here touches global state or needs a display; notebooks show the returned Figure or the PNG.
Every chart has a title, labelled axes with units and dollar tick labels; labels use
`money.format_usd`. Partial days (the window or *now* cuts them) are hatched and say so.
"""

from __future__ import annotations

import calendar
import io
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from app.analytics.money import format_usd

WIDTH_IN, HEIGHT_IN, DPI = 12.0, 6.75, 100  # 1200 x 675 pixels
SIZE_PX = (int(WIDTH_IN * DPI), int(HEIGHT_IN * DPI))
# Colour-blind-safe palette (Okabe-Ito), then grey for the rest.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442")
OTHER = "#999999"


def _plain(text: str) -> str:
    """Text with dollar signs escaped: two "$" in one label would start matplotlib mathtext."""
    return text.replace("$", r"\$")


def _usd_axis(value: float, _position: object) -> str:
    if value == 0:
        return "$0"
    if abs(value) >= 1000:
        return f"${value:,.0f}"
    if abs(value) >= 1:
        return f"${value:,.2f}".rstrip("0").rstrip(".")
    return f"${value:.3g}"


def _figure(title: str, subtitle: str = "") -> tuple[Figure, Axes]:
    fig = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    fig.suptitle(title, fontsize=16, fontweight="bold")
    if subtitle:
        ax.set_title(subtitle, fontsize=11, color="#444444")
    ax.grid(axis="both", color="#e5e5e5", linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return fig, ax


def save_png(fig: Figure, path: Path | str) -> Path:
    """Write the figure as a PNG of exactly `SIZE_PX` pixels."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, format="png", dpi=DPI)
    return target


def png_bytes(fig: Figure) -> bytes:
    """The figure as PNG bytes of exactly `SIZE_PX` pixels (for embedding in a page)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def _floats(values: pd.Series) -> np.ndarray:
    return np.array([float(v) for v in values], dtype=float)


def daily_cost_chart(
    wide: pd.DataFrame, subtitle: str = "", partial: set[pd.Timestamp] | None = None
) -> Figure:
    """Stacked bars: one per UTC day, one colour per model (from `costs.daily_cost_by_model`);
    the `partial` days are hatched (the data holds only part of them)."""
    fig, ax = _figure("Daily cost by model", subtitle)
    days = pd.DatetimeIndex(wide.index)
    cut = np.array([d in (partial or set()) for d in days], dtype=bool)
    bottom = np.zeros(len(days))
    for i, model in enumerate(wide.columns):
        heights = _floats(wide[model])
        color = PALETTE[i] if i < len(PALETTE) else OTHER
        bars = ax.bar(days, heights, bottom=bottom, width=0.8, label=str(model), color=color)
        for bar, is_partial in zip(bars, cut, strict=True):
            if is_partial:
                bar.set_hatch("//")
                bar.set_alpha(0.55)
        bottom += heights
    for day, top in zip(days[cut], bottom[cut], strict=True):
        ax.annotate("partial day", (day, top), xytext=(0, 4), textcoords="offset points",
                    ha="center", fontsize=9, color="#444444")  # fmt: skip
    ax.set_ylim(0, max(float(bottom.max(initial=0.0)) * 1.08, 1.0))
    ax.set_xlabel("Day (UTC)")
    ax.set_ylabel("Cost (USD)")
    ax.yaxis.set_major_formatter(FuncFormatter(_usd_axis))
    if len(days):
        ax.set_xlim(days[0] - timedelta(hours=18), days[-1] + timedelta(hours=18))
        step = max(1, len(days) // 15)
        ax.set_xticks(days[::step], [d.strftime("%b %d") for d in days[::step]], rotation=45)
    if len(wide.columns):
        ax.legend(title="Model", loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False,
                  fontsize=10)  # fmt: skip
    return fig


def _user_label(row: pd.Series) -> str:
    email = row.get("email")
    if isinstance(email, str) and email:
        return email
    return f"user {str(row['user_id'])[:8]}"


def top_users_chart(top: pd.DataFrame, subtitle: str = "") -> Figure:
    """Horizontal bars, biggest spender on top, each labelled with its cost."""
    n = len(top)
    fig, ax = _figure(f"Top {n} users by cost", subtitle)
    labels = [_user_label(row) for _, row in top.iterrows()]
    values = _floats(top["cost_usd"])
    positions = np.arange(n)[::-1]
    ax.barh(positions, values, color=PALETTE[0], height=0.7)
    ax.set_yticks(positions, labels, fontsize=9 if n > 12 else 11)
    ax.set_xlabel("Cost in the window (USD)")
    ax.set_ylabel("User")
    ax.xaxis.set_major_formatter(FuncFormatter(_usd_axis))
    ax.grid(axis="y", visible=False)
    peak = float(values.max()) if n else 1.0
    ax.set_xlim(0, peak * 1.15 or 1.0)
    for y, value, cost in zip(positions, values, top["cost_usd"], strict=True):
        ax.text(value + peak * 0.01, y, _plain(format_usd(cost)), va="center", fontsize=9)
    return fig


def cost_distribution_chart(per_user: pd.DataFrame, subtitle: str = "") -> Figure:
    """Histogram of cost per user on log-spaced bins and a log x axis, median and p90 marked."""
    fig, ax = _figure("Distribution of cost per user", subtitle)
    values = _floats(per_user["cost_usd"])
    spenders = values[values > 0]
    if spenders.size:
        low, high = spenders.min(), spenders.max()
        bins = np.logspace(np.log10(low), np.log10(high * 1.0001 if high > low else low * 10), 40)
        ax.hist(spenders, bins=bins.tolist(), color=PALETTE[0], edgecolor="white", linewidth=0.5)
        for q, style, name in ((0.5, "--", "median"), (0.9, ":", "90th percentile")):
            x = float(np.quantile(spenders, q))
            ax.axvline(x, color=PALETTE[5], linestyle=style, linewidth=2,
                       label=_plain(f"{name}: {format_usd(x)}"))  # fmt: skip
        ax.legend(loc="upper right", frameon=False, fontsize=11)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(_usd_axis))
    ax.set_xlabel("Cost per user in the window (USD, log scale)")
    ax.set_ylabel("Users")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # whole users, never 1.5 of one
    zero = int((values <= 0).sum())
    if zero:
        ax.text(0.01, 0.97, f"{zero} user(s) with $0 not shown", transform=ax.transAxes,
                va="top", fontsize=10, color="#444444")  # fmt: skip
    return fig


def month_projection_chart(
    daily: pd.DataFrame,
    projection: pd.Series,
    *,
    label: str = "",
    monthly_budget: Decimal | float | None = None,
) -> Figure:
    """Cumulative month-to-date spend and the projected path to month end.

    `daily` holds the days (`day`, `cost_usd`) of whoever is projected (one user, or the app's
    daily totals); `projection` is their row of `projection.month_projection` /
    `app_projection` (`month`, `mtd_usd`, `daily_rate_usd`, `projected_month_usd`, `basis`).
    Without a projection ("not enough data") only the month to date is drawn, and says why.
    """
    first: date = pd.Timestamp(projection["month"]).date()
    last = first.replace(day=calendar.monthrange(first.year, first.month)[1])
    who = label or f"user {str(projection['user_id'])[:8]}"
    fig, ax = _figure(f"Month to date and forecast: {who}", first.strftime("%B %Y (UTC days)"))
    mine = daily.assign(day=pd.to_datetime(daily["day"]))
    mine = mine[(mine["day"] >= pd.Timestamp(first)) & (mine["day"] <= pd.Timestamp(last))]
    by_day = mine.groupby("day")["cost_usd"].sum()
    seen_until = max(by_day.index) if len(by_day) else pd.Timestamp(first)
    days = pd.date_range(first, seen_until, freq="D")
    cumulative = np.cumsum([float(by_day.get(day, 0.0)) for day in days])
    ax.plot(days, cumulative, marker="o", color=PALETTE[0], linewidth=2.5,
            label=_plain(f"month to date: {format_usd(projection['mtd_usd'])}"))  # fmt: skip
    end = pd.Timestamp(last)
    projected = projection["projected_month_usd"]
    if str(projection["basis"]).startswith("actual"):
        ax.text(0.5, 0.92, _plain(f"Actual month total: {format_usd(projected)}"),
                transform=ax.transAxes, ha="center", fontsize=13, color="#444444")  # fmt: skip
    elif projected is not None and not pd.isna(projected):
        start_y = float(cumulative[-1]) if len(cumulative) else 0.0
        low, high = float(projection["low_usd"]), float(projection["high_usd"])
        ax.fill_between(
            [days[-1], end],
            [start_y, low],
            [start_y, high],
            color=PALETTE[1],
            alpha=0.25,
            linewidth=0,
            label=_plain(f"forecast range: {format_usd(low)} to {format_usd(high)}"),
        )
        ax.plot([days[-1], end], [start_y, float(projected)], linestyle="--", color=PALETTE[1],
                linewidth=2.5, label=_plain(f"forecast month end: {format_usd(projected)} "
                f"({format_usd(projection['daily_rate_usd'])}/day)"))  # fmt: skip
        ax.scatter([end], [float(projected)], color=PALETTE[1], zorder=3, s=60)
    else:
        ax.text(0.5, 0.5, f"No forecast: {projection['basis']}", transform=ax.transAxes,
                ha="center", fontsize=13, color="#444444")  # fmt: skip
    if monthly_budget:
        ax.axhline(float(monthly_budget), color=PALETTE[5], linewidth=1.5,
                   label=_plain(f"monthly budget: {format_usd(monthly_budget)}"))  # fmt: skip
    ax.set_xlim(pd.Timestamp(first) - timedelta(hours=12), end + timedelta(hours=12))
    ax.set_ylim(bottom=0)
    ax.set_xlabel("Day of month")
    ax.set_ylabel("Cumulative cost (USD)")
    ax.yaxis.set_major_formatter(FuncFormatter(_usd_axis))
    ticks = pd.date_range(first, last, freq="D")[::3]
    ax.set_xticks(ticks, [d.strftime("%b %d") for d in ticks], rotation=45)
    ax.legend(loc="upper left", frameon=False, fontsize=11)
    return fig


def user_cost_chart(daily: pd.DataFrame, who: str, subtitle: str = "") -> Figure:
    """One user's cost over time: a bar per UTC day and the cumulative cost as a line.

    Replaces the charts that need several users (top users, the distribution) in a one-user
    report. `daily` has `day` and `cost_usd` (one row per day, 0 on days without usage).
    """
    fig, ax = _figure(f"Cost over time: {who}", subtitle)
    days = pd.DatetimeIndex(pd.to_datetime(daily["day"]))
    values = _floats(daily["cost_usd"])
    ax.bar(days, values, width=0.8, color=PALETTE[0], label="cost per day")
    ax.set_xlabel("Day (UTC)")
    ax.set_ylabel("Cost per day (USD)")
    ax.yaxis.set_major_formatter(FuncFormatter(_usd_axis))
    ax.set_ylim(0, max(float(values.max(initial=0.0)) * 1.1, 0.01))
    total = ax.twinx()
    total.plot(days, np.cumsum(values), color=PALETTE[5], linewidth=2.5, marker="o",
               label=_plain(f"cumulative: {format_usd(float(values.sum()))}"))  # fmt: skip
    total.set_ylabel("Cumulative cost (USD)")
    total.set_ylim(bottom=0)
    total.yaxis.set_major_formatter(FuncFormatter(_usd_axis))
    total.spines["top"].set_visible(False)
    if len(days):
        ax.set_xlim(days[0] - timedelta(hours=18), days[-1] + timedelta(hours=18))
        step = max(1, len(days) // 15)
        ax.set_xticks(days[::step], [d.strftime("%b %d") for d in days[::step]], rotation=45)
    handles = ax.get_legend_handles_labels()
    more = total.get_legend_handles_labels()
    ax.legend(handles[0] + more[0], handles[1] + more[1], loc="upper left", frameon=False,
              fontsize=11)  # fmt: skip
    return fig
