"""Money in frames and on screen: float columns for pandas, exact `Decimal` where it must be exact.

The rule:

- **Frames analysts handle are float.** Every money column of the frames on a `CostReport`
  and of the view functions (`cost_usd`, any `*_usd` column, `avg_cost_per_request`) is
  `float64`, so `frame.plot(y="cost_usd")`, comparisons, `.sum()` and `.describe()` just work.
  A float64 holds 15 significant digits: an amount below $10,000,000 with 8 decimal places
  survives the conversion digit for digit, but sums of floats drift in the last places.
- **Exact where it must be exact: `Decimal`.** The aggregates arrive from PostgreSQL as
  `numeric` -> `Decimal`; `app.analytics.costs` computes on those, and the report keeps the
  exact tables for the CSV export (`CostReport.exact`), the headline totals
  (`CostReport.totals`) and reconciliation (`app.analytics.reconcile`). Never add floats to
  get a total: take it from `totals` or the exact table.
- **People see `format_usd`, with one precision rule.** One formatter for every page,
  notebook and chart label: two decimals (`$178.08`), or more when the amount needs them to
  show two significant digits (`$0.0073`), up to eight, the precision usage is stored with
  (`numeric(14,8)`). So `$0.00` always means exactly zero: any stored non-zero amount shows
  a non-zero digit, and anything smaller still reads `<$0.00000001`. A column is shown with
  one number of decimals for all its rows (`column_places`, from its smallest non-zero
  amount): never `$0.00` next to `$0.007259`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from decimal import Decimal

import pandas as pd

MAX_PLACES = 8  # the stored precision: every non-zero numeric(14,8) amount shows a digit
_MONEY_NAMES = frozenset({"avg_cost_per_request", "cost_per_request", "cost_per_active_user"})


def is_money_column(name: object) -> bool:
    """Money columns by name: `cost_usd`, `*_usd` and the per-request averages."""
    text = str(name)
    return text.endswith("_usd") or text in _MONEY_NAMES


def format_usd(value: Decimal | float, places: int | None = None) -> str:
    """Dollars for people: `$1,234.56`, `$0.0073`, `-$0.50` (the rule in the module docstring).

    `places` (a column's) is a minimum: an amount that needs more decimals gets them.
    """
    amount = float(value)
    digits = max(places or 0, column_places([amount]))
    sign = "-" if amount < 0 else ""
    if amount and round(abs(amount), digits) == 0:
        return f"<{sign}${10**-MAX_PLACES:.{MAX_PLACES}f}"
    return f"{sign}${abs(amount):,.{digits}f}"


def column_places(values: Iterable[Decimal | float | None]) -> int:
    """Decimals for a whole column: 2, or enough for its smallest non-zero amount to show two
    significant digits, at most `MAX_PLACES`."""
    smallest = min(
        (abs(float(v)) for v in values if v is not None and not pd.isna(v) and float(v) != 0),
        default=1.0,
    )
    if smallest >= 0.1:
        return 2
    return min(MAX_PLACES, max(2, 1 - math.floor(math.log10(smallest))))


def format_column(values: pd.Series) -> list[str]:
    """A money column as strings, one number of decimals for every row (blank for missing)."""
    places = column_places(values)
    return ["" if v is None or pd.isna(v) else format_usd(v, places) for v in values]


def to_float(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy with every money column (Decimal objects) as float64, ready for pandas."""
    out = frame.copy()
    for name in out.columns:
        if is_money_column(name):
            out[name] = pd.to_numeric(
                pd.Series([None if v is None else float(v) for v in out[name]], index=out.index),
                errors="coerce",
            ).astype("float64")
    return out
