"""Provider-reported cost against our table price: which turns differ, and by model.

Where a provider reports what a request cost (OpenRouter's `usage.cost`), the service stores it
in `usage_logs.provider_cost_usd` next to the table-priced `cost_usd`. The SQL function
`public.usage_cost_mismatches` (migration 20261206000400) returns the turns whose two figures
differ by more than a tolerance in USD; this module loads them and sums them by model, so a stale
price table (or a provider's price change) shows up as a row per model with the turns and users it
touched. Turns with no reported cost are never flagged: there is nothing to compare.
"""

from __future__ import annotations

from decimal import Decimal

import pandas as pd

from app.analytics.load import Window, load, to_frame
from app.analytics.sources import Aggregate, FunctionsMissing, Source

COST_MISMATCHES = Aggregate(
    "usage_cost_mismatches",
    {"turn_id": "id", "user_id": "id", "provider": "text", "model": "text", "requests": "count",
     "cost_usd": "money", "provider_cost_usd": "money", "difference_usd": "money",
     "first_at": "timestamp"},
    ("turn_id", "user_id", "provider", "model"),
)  # fmt: skip

RECONCILIATION_COLUMNS = [
    "provider", "model", "turns", "users", "cost_usd", "provider_cost_usd", "difference_usd",
]  # fmt: skip


def load_cost_mismatches(source: Source, window: Window, tolerance: Decimal) -> pd.DataFrame:
    """Turns in the window whose |provider cost - table cost| > `tolerance` USD, largest first."""
    if tolerance < 0:
        raise ValueError("tolerance must not be negative")
    frame = load(source, COST_MISMATCHES, window, exact=True, tolerance=str(tolerance))
    size = frame["difference_usd"].map(abs)
    return frame.loc[size.sort_values(ascending=False, kind="stable").index].reset_index(drop=True)


def reconciliation(
    source: Source, window: Window, tolerance: Decimal
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The flagged turns and their sums by model; both empty on a database from before the
    provider-cost migration (nothing was reported there to compare)."""
    try:
        mismatches = load_cost_mismatches(source, window, tolerance)
    except FunctionsMissing:
        mismatches = to_frame(COST_MISMATCHES, [])
    return mismatches, reconcile_by_model(mismatches)


def reconcile_by_model(mismatches: pd.DataFrame) -> pd.DataFrame:
    """Per provider and model: the flagged turns and users, both totals and their difference
    (provider minus table: positive means we under-priced), largest absolute difference first."""
    if mismatches.empty:
        return pd.DataFrame(columns=RECONCILIATION_COLUMNS)
    rows = []
    for (provider, model), group in mismatches.groupby(["provider", "model"], sort=True):
        table = sum(group["cost_usd"], Decimal(0))
        reported = sum(group["provider_cost_usd"], Decimal(0))
        rows.append(
            {
                "provider": provider,
                "model": model,
                "turns": int(group["turn_id"].nunique()),
                "users": int(group["user_id"].nunique()),
                "cost_usd": table,
                "provider_cost_usd": reported,
                "difference_usd": reported - table,
            }
        )
    out = pd.DataFrame(rows, columns=RECONCILIATION_COLUMNS)
    order = out["difference_usd"].map(abs).sort_values(ascending=False, kind="stable").index
    return out.loc[order].reset_index(drop=True)
