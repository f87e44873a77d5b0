"""Reports for people: tables with dollars, percentages and short ids, and the summary cards."""

from __future__ import annotations

from decimal import Decimal

import pandas as pd

from app.analytics import money, projection
from app.analytics.report.build import CostReport

PAGE_ROWS = 10  # rows of a long table shown on a page (the CSV has them all)


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
    percentages, dates, thousands separators, users by email (else a short id), conversations
    by their full id (to look one up). Cut to `rows` rows."""
    out = _who(frame.head(rows) if rows else frame.copy())
    for name in list(out.columns):
        column = out[name]
        if str(name).startswith("share_"):
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


def _usd(value: Decimal | float | None) -> str:
    return "—" if value is None or pd.isna(value) else money.format_usd(value)


def summary(report: CostReport) -> list[tuple[str, str, str]]:
    """The one-screen summary: (label, value, note) for the page's top."""
    t, ex = report.totals, report.exact
    unit = ex["unit_costs"].iloc[0]
    forecast = ex["app_forecast"].iloc[0]
    saved = sum(ex["cache_savings"]["net_savings_usd"], Decimal(0)) if report.priced else None
    wasted = ex["wasted_spend"]
    wasted_usd = sum(wasted["cost_usd"][wasted["wasted"].astype(bool)], Decimal(0))
    share = float(wasted_usd / t["cost_usd"]) if t["cost_usd"] else 0.0
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
        ("Cost per message", _usd(unit["cost_per_request"]), "one request per message"),
        _forecast(forecast, month),
        ("Cache saved", _usd(saved), "net of the cache-write premium")
        if saved is not None else ("Cache saved", "not priced", "build_report(..., price=...)"),
        ("Wasted spend", _usd(wasted_usd), f"{share:.1%} on failed or cut answers"),
        budget,
        ("Partial days", f"{days}", "hatched in charts, marked in tables" if days else "none"),
    ]  # fmt: skip


def _forecast(row: pd.Series, month: str) -> tuple[str, str, str]:
    """The forecast card: the month's actual total once it is over, else the range."""
    projected = row["projected_month_usd"]
    if str(row["basis"]).startswith(projection.ACTUAL):
        return (f"{month} (actual)", _usd(projected), row["basis"])
    if projected is None or pd.isna(projected):
        return (f"Forecast {month}", "not enough data", row["basis"])
    spread = f"{_usd(row['low_usd'])} to {_usd(row['high_usd'])}"
    return (f"Forecast {month}", _usd(projected), f"range {spread}; {row['basis']}")
