"""USD cost of one LLM call from the tokens it billed — `Decimal` end to end, never a silent $0.

Sources, first match wins:

1. **Overrides file** (`PRICING_OVERRIDES_PATH`): your own rates, for self-hosted or custom models
   and for correcting a table. `source="override:<file name>"`.
2. **genai-prices** (the maintained price table, with tiers and dated price changes, chosen by the
   request time). Our provider names map to its provider ids: `anthropic` → `anthropic`,
   `openai` → `openai`, `openai-compatible` → `openai` by model name (so `gpt-4o` behind a proxy
   is priced), any other name is passed through. `source="genai-prices@<installed version>"`.
3. **Fallback**: `UNKNOWN_MODEL_INPUT_USD_PER_MTOK` / `UNKNOWN_MODEL_OUTPUT_USD_PER_MTOK` (cache
   tokens at the input rate), `known_model=False`, `source="fallback"`, and one WARNING per
   (provider, model) per process.

Token semantics: our `Usage.input_tokens` EXCLUDES cache reads and writes (they are partitions),
while genai-prices' `input_tokens` is the total input. The conversion happens once, in
`_genai_usage`. Costs are rounded half-up to 8 decimal places (`numeric(14,8)` in `usage_logs`).

Overrides file format (JSON, see the packaged example `app/core/pricing_overrides.json`)::

    {
      "comment": "free text, ignored",
      "models": [
        {"model": "llama-3.1-8b-instruct", "provider": "openai-compatible",
         "input_mtok": "0.10", "output_mtok": "0.40",
         "cache_read_mtok": "0.05", "cache_write_mtok": "0.10"}
      ]
    }

Rates are USD per million tokens, as JSON numbers or decimal strings (read as `Decimal`, never
float). `model` is matched case-insensitively against the model name the provider reported;
`provider` is optional — an entry naming the provider wins over one that does not.
`cache_read_mtok` and `cache_write_mtok` default to `input_mtok`. Unknown fields, negative rates,
duplicate (provider, model) entries or an unreadable file raise `PriceOverridesError` when the
`Pricer` is built, so a typo stops the service at start instead of mispricing it.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import genai_prices
from genai_prices import Usage as GPUsage
from genai_prices import calc_price
from genai_prices.types import ModelPrice
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.config import Settings
from app.core.domain import Price, Usage

logger = logging.getLogger(__name__)

GENAI_SOURCE = f"genai-prices@{genai_prices.__version__}"
FALLBACK_SOURCE = "fallback"
EXAMPLE_OVERRIDES = Path(__file__).with_name("pricing_overrides.json")
_EIGHT_PLACES = Decimal("0.00000001")  # numeric(14,8)
_GENAI_PROVIDERS: dict[str, tuple[str, ...]] = {
    "anthropic": ("anthropic",),
    "openai": ("openai",),
    "openai-compatible": ("openai",),
}


class PriceOverridesError(ValueError):
    """The overrides file cannot be used; raised when the `Pricer` is built."""


class Rates(BaseModel):
    """USD per million tokens for each kind of token."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input_mtok: Decimal = Field(ge=0, allow_inf_nan=False)
    output_mtok: Decimal = Field(ge=0, allow_inf_nan=False)
    cache_read_mtok: Decimal | None = Field(default=None, ge=0, allow_inf_nan=False)
    cache_write_mtok: Decimal | None = Field(default=None, ge=0, allow_inf_nan=False)

    def cost(self, usage: Usage) -> Decimal:
        """Priced by genai-prices' own arithmetic (cache tokens at the input rate when unset)."""
        price = ModelPrice(
            input_mtok=self.input_mtok,
            output_mtok=self.output_mtok,
            cache_read_mtok=self.cache_read_mtok,
            cache_write_mtok=self.cache_write_mtok,
        )
        return price.calc_price(_genai_usage(usage))["total_price"]


class _OverrideEntry(Rates):
    model: str = Field(min_length=1)
    provider: str | None = Field(default=None, min_length=1)


class _OverridesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    comment: str | list[str] = ""
    models: list[_OverrideEntry]


def load_overrides(path: Path) -> dict[tuple[str | None, str], Rates]:
    """(provider or None, lower-case model) → rates, from an overrides file (format above)."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"), parse_float=Decimal)
    except OSError as exc:
        raise PriceOverridesError(f"cannot read pricing overrides {path}: {exc}") from exc
    except ValueError as exc:
        raise PriceOverridesError(f"pricing overrides {path} is not valid JSON: {exc}") from exc
    try:
        parsed = _OverridesFile.model_validate(document)
    except ValidationError as exc:
        raise PriceOverridesError(f"invalid pricing overrides {path}: {exc}") from exc
    table: dict[tuple[str | None, str], Rates] = {}
    for entry in parsed.models:
        key = (entry.provider, entry.model.lower())
        if key in table:
            raise PriceOverridesError(
                f"invalid pricing overrides {path}: duplicate entry for "
                f"provider={entry.provider!r} model={entry.model!r}"
            )
        table[key] = Rates(
            input_mtok=entry.input_mtok,
            output_mtok=entry.output_mtok,
            cache_read_mtok=entry.cache_read_mtok,
            cache_write_mtok=entry.cache_write_mtok,
        )
    return table


class Pricer:
    """`app.core.ports.PriceBook`: price a call from overrides, genai-prices, then the fallback."""

    def __init__(self, settings: Settings) -> None:
        path = settings.pricing_overrides_path
        self._overrides = load_overrides(path) if path is not None else {}
        self._override_source = f"override:{path.name}" if path is not None else ""
        self._fallback = Rates(
            input_mtok=settings.unknown_model_input_usd_per_mtok,
            output_mtok=settings.unknown_model_output_usd_per_mtok,
        )
        self._warned: set[tuple[str, str]] = set()

    def price(
        self, provider: str, model: str, usage: Usage, *, when: datetime | None = None
    ) -> Price:
        """The cost of `usage` on `model`, priced at `when` (default now; naive means UTC)."""
        rates = self._override_for(provider, model)
        if rates is not None:
            return Price(_round(rates.cost(usage)), self._override_source, known_model=True)
        total = self._genai_total(provider, model, usage, when)
        if total is not None:
            return Price(_round(total), GENAI_SOURCE, known_model=True)
        self._warn_unknown(provider, model)
        return Price(_round(self._fallback.cost(usage)), FALLBACK_SOURCE, known_model=False)

    def worst_case_cost(
        self, provider: str, model: str, input_tokens: int, max_output_tokens: int
    ) -> Decimal:
        """Upper bound for a budget reservation: all input uncached, every output token used."""
        usage = Usage(input_tokens=input_tokens, output_tokens=max_output_tokens)
        return self.price(provider, model, usage).cost_usd

    # --- sources ------------------------------------------------------------------------------
    def _override_for(self, provider: str, model: str) -> Rates | None:
        if not self._overrides:
            return None
        name = model.lower()
        return self._overrides.get((provider, name)) or self._overrides.get((None, name))

    @staticmethod
    def _genai_total(
        provider: str, model: str, usage: Usage, when: datetime | None
    ) -> Decimal | None:
        if when is not None and when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        for provider_id in _GENAI_PROVIDERS.get(provider, (provider,)):
            try:
                calculation = calc_price(
                    _genai_usage(usage),
                    model,
                    provider_id=provider_id,
                    genai_request_timestamp=when,
                )
            except LookupError:
                continue
            return calculation.total_price
        return None

    def _warn_unknown(self, provider: str, model: str) -> None:
        if (provider, model) in self._warned:
            return
        self._warned.add((provider, model))
        logger.warning(
            "no price known for provider=%s model=%s: using the fallback rates "
            "(input %s, output %s USD per million tokens); add it to the pricing overrides",
            provider,
            model,
            self._fallback.input_mtok,
            self._fallback.output_mtok,
        )


def _genai_usage(usage: Usage) -> GPUsage:
    """genai-prices counts cache reads and writes inside `input_tokens`; we do not."""
    return GPUsage(
        input_tokens=usage.prompt_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens,
    )


def _round(amount: Decimal) -> Decimal:
    return amount.quantize(_EIGHT_PLACES, rounding=ROUND_HALF_UP)
