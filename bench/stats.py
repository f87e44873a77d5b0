"""Summaries of latency samples and the ratios a side-by-side run reports (pure functions).

Percentiles use the nearest-rank method on sorted samples: p99 of 100 samples is the 99th value,
a value that was actually observed, never an interpolation between two.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile of `values` (any order); None when there are none."""
    if not values:
        return None
    if not 0 < p <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {p}")
    ordered = sorted(values)
    rank = math.ceil(p / 100 * len(ordered))
    return ordered[max(rank, 1) - 1]


@dataclass(frozen=True)
class Summary:
    """Count and percentiles (in milliseconds) of one latency series."""

    n: int
    p50: float | None
    p90: float | None
    p99: float | None
    max: float | None

    def as_json(self) -> dict[str, float | int | None]:
        return {
            "n": self.n,
            "p50": _round(self.p50),
            "p90": _round(self.p90),
            "p99": _round(self.p99),
            "max": _round(self.max),
        }


def summarize_ms(seconds: Iterable[float | None]) -> Summary:
    """Percentiles in ms of the samples that have a value (failed ones have none)."""
    ms = [s * 1000 for s in seconds if s is not None]
    return Summary(
        n=len(ms),
        p50=percentile(ms, 50),
        p90=percentile(ms, 90),
        p99=percentile(ms, 99),
        max=max(ms) if ms else None,
    )


def added(service: float | None, direct: float | None) -> float | None:
    """What the service adds over the direct path at the same percentile (ms)."""
    if service is None or direct is None:
        return None
    return service - direct


def ratio(service: float | None, direct: float | None) -> float | None:
    """service / direct; None when either is missing or the direct value is zero."""
    if service is None or direct is None or direct == 0:
        return None
    return service / direct


def per_thousand(amount: float, count: int) -> float | None:
    """`amount` per 1,000 of `count` (CPU seconds per 1,000 tokens → pass ms, get ms)."""
    if count <= 0:
        return None
    return amount * 1000 / count


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)
