"""Exact per-token prices for vectorised costing: rates derived once from the project's Pricer.

Pricing is linear below genai-prices' long-context tiers, so a model's cost is
`tokens_in x r_in + tokens_out x r_out + cache_read x r_cr + cache_write x r_cw`. Each rate is
the Pricer's price of `UNIT_TOKENS` tokens of one kind, divided back: an exact `Decimal`, held
as an integer count of 10**-scale USD so millions of rows are priced with int64 numpy arithmetic
and rounded once, half-up to 8 places, exactly like `Pricer` (and `numeric(14,8)`). A probe
usage checks the result against the Pricer itself, and prices must be the same at both ends of
the window, or `RatesError` says the vectorisation would be wrong.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

import numpy as np

from app.core.domain import Price, Usage

UNIT_TOKENS = 10_000  # priced once per kind of token to derive a per-token rate
COST_PLACES = 8  # numeric(14,8)


class RatesError(ValueError):
    """A model's prices cannot be applied as fixed per-token rates."""


class DatedPricer(Protocol):
    """`app.core.pricing.Pricer`: prices a usage as of a request time (prices change over time)."""

    def price(
        self, provider: str, model: str, usage: Usage, *, when: datetime | None = None
    ) -> Price: ...


@dataclass(frozen=True)
class ModelRates:
    """Exact per-token USD rates of one model, as integers in units of 10**-scale USD."""

    provider: str
    model: str
    source: str
    input: int
    output: int
    cache_read: int
    cache_write: int
    scale: int


_KINDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
_UNIT_USAGES = {
    "input_tokens": Usage(input_tokens=UNIT_TOKENS),
    "output_tokens": Usage(output_tokens=UNIT_TOKENS),
    "cache_read_tokens": Usage(cache_read_tokens=UNIT_TOKENS),
    "cache_write_tokens": Usage(cache_write_tokens=UNIT_TOKENS),
}


def derive_rates(
    pricer: DatedPricer, models: Sequence[tuple[str, str]], start: datetime, end: datetime
) -> list[ModelRates]:
    """Per-token rates from the Pricer, checked to be linear and the same all through the window."""
    rates = []
    probe = Usage(
        input_tokens=3_217, output_tokens=911, cache_read_tokens=7_043, cache_write_tokens=1_289
    )
    for provider, model in models:
        per_token: dict[str, Decimal] = {}
        for kind, unit in _UNIT_USAGES.items():
            first = pricer.price(provider, model, unit, when=start)
            last = pricer.price(provider, model, unit, when=end)
            if first.cost_usd != last.cost_usd:
                raise RatesError(f"the price of {model} changes between {start} and {end}")
            per_token[kind] = last.cost_usd / UNIT_TOKENS
        scale = max(
            COST_PLACES, *(-int(v.normalize().as_tuple().exponent) for v in per_token.values())
        )
        units = {kind: int(per_token[kind].scaleb(scale)) for kind in _KINDS}
        rate = ModelRates(
            provider, model, last.source, units["input_tokens"], units["output_tokens"],
            units["cache_read_tokens"], units["cache_write_tokens"], scale,
        )  # fmt: skip
        tokens = [np.array([getattr(probe, kind)]) for kind in _KINDS]
        vectorised = Decimal(int(cost_units(rate, *tokens)[0])).scaleb(-COST_PLACES)
        if vectorised != pricer.price(provider, model, probe, when=end).cost_usd:
            raise RatesError(f"pricing of {model} is not linear: it cannot be vectorised")
        rates.append(rate)
    return rates


def cost_units(
    rate: ModelRates,
    tokens_in: np.ndarray,
    tokens_out: np.ndarray,
    cache_read: np.ndarray,
    cache_write: np.ndarray,
) -> np.ndarray:
    """Exact cost in units of 1e-8 USD, rounded half-up (the `Pricer` and numeric(14,8) rule)."""
    exact = (
        tokens_in.astype(np.int64) * rate.input
        + tokens_out.astype(np.int64) * rate.output
        + cache_read.astype(np.int64) * rate.cache_read
        + cache_write.astype(np.int64) * rate.cache_write
    )
    step = 10 ** (rate.scale - COST_PLACES)
    rounded: np.ndarray = (exact + step // 2) // step
    return rounded


def format_units(units: np.ndarray) -> list[str]:
    """1e-8 USD integers as exact decimal strings ("0.01234567")."""
    whole, frac = np.divmod(units.astype(np.int64), 10**COST_PLACES)
    return [f"{w}.{f:08d}" for w, f in zip(whole.tolist(), frac.tolist(), strict=True)]
