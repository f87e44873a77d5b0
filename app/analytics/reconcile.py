"""Prove the daily rollup equals the raw usage rows, group by group, exactly, in `Decimal`.

`reconcile(dsn)` groups `public.usage_logs` by (user, UTC day, provider, model, status) in
PostgreSQL, full-outer-joins it with `public.usage_daily` and returns every group where any
count, token sum, cost or first/last request time differs (a group missing on one side
differs too), plus the grand totals of both sides read as `Decimal` (numeric, never float).
Run it as `postgres` or the service role (RLS would hide other users' rows from anyone else).
Both sides are read in one REPEATABLE READ snapshot, so concurrent inserts cannot make them
disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.rows import dict_row

KEY = ("user_id", "day", "provider", "model", "status")
MEASURES = (
    "requests", "tokens_in", "tokens_out", "cache_read_tokens", "cache_write_tokens", "cost_usd",
    "estimated_requests", "first_at", "last_at",
)  # fmt: skip

_RAW = """
select l.user_id, (l.created_at at time zone 'UTC')::date as day, l.provider, l.model, l.status,
  count(*)::bigint as requests, sum(l.tokens_in)::bigint as tokens_in,
  sum(l.tokens_out)::bigint as tokens_out, sum(l.cache_read_tokens)::bigint as cache_read_tokens,
  sum(l.cache_write_tokens)::bigint as cache_write_tokens, sum(l.cost_usd) as cost_usd,
  count(*) filter (where l.estimated)::bigint as estimated_requests,
  min(l.created_at) as first_at, max(l.created_at) as last_at
from public.usage_logs l group by 1, 2, 3, 4, 5
"""
_KEYS = ", ".join(KEY)
_DIFFER = " or ".join(f"r.{m} is distinct from d.{m}" for m in MEASURES)
_MISMATCHES = f"""
with raw as ({_RAW})
select {", ".join(f"coalesce(r.{k}, d.{k}) as {k}" for k in KEY)},
  {", ".join(f"r.{m} as raw_{m}, d.{m} as rollup_{m}" for m in MEASURES)}
from raw r full join public.usage_daily d using ({_KEYS})
where r.requests is null or d.requests is null or {_DIFFER}
order by {_KEYS}
limit %(limit)s
"""  # noqa: S608 - only constants are formatted in
_TOTALS = f"""
select
  (select count(*) from ({_RAW}) g) as raw_groups,
  (select count(*) from public.usage_daily) as rollup_groups,
  (select count(*) from public.usage_logs) as raw_rows,
  (select coalesce(sum(requests), 0) from public.usage_daily) as rollup_requests,
  (select coalesce(sum(cost_usd), 0) from public.usage_logs) as raw_cost_usd,
  (select coalesce(sum(cost_usd), 0) from public.usage_daily) as rollup_cost_usd
"""  # noqa: S608 - constants


@dataclass
class Reconciliation:
    raw_rows: int
    rollup_requests: int
    raw_groups: int
    rollup_groups: int
    raw_cost_usd: Decimal
    rollup_cost_usd: Decimal
    mismatches: list[dict[str, Any]] = field(default_factory=list)

    @property
    def equal(self) -> bool:
        return (
            not self.mismatches
            and self.raw_rows == self.rollup_requests
            and self.raw_groups == self.rollup_groups
            and self.raw_cost_usd == self.rollup_cost_usd
        )


def reconcile(dsn: str, *, limit: int = 20) -> Reconciliation:
    """Compare the rollup with the raw rows (at most `limit` differing groups are returned)."""
    with psycopg.connect(dsn, row_factory=dict_row) as conn:
        conn.execute("set transaction isolation level repeatable read, read only")
        totals = conn.execute(_TOTALS).fetchone()
        mismatches = conn.execute(_MISMATCHES, {"limit": limit}).fetchall()
    assert totals is not None
    return Reconciliation(
        raw_rows=int(totals["raw_rows"]),
        rollup_requests=int(totals["rollup_requests"]),
        raw_groups=int(totals["raw_groups"]),
        rollup_groups=int(totals["rollup_groups"]),
        raw_cost_usd=Decimal(totals["raw_cost_usd"]),
        rollup_cost_usd=Decimal(totals["rollup_cost_usd"]),
        mismatches=mismatches,
    )
