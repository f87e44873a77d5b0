"""Pricing: hand-computed costs from peers.md §5 rates, cache tokens priced exactly once,
overrides before genai-prices, a loud fallback for unknown models, Decimal everywhere."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import genai_prices
import pytest
from genai_prices import Usage as GPUsage
from genai_prices import calc_price, extract_usage

from app.core.domain import Usage
from app.core.ports import PriceBook
from app.core.pricing import (
    EXAMPLE_OVERRIDES,
    GENAI_SOURCE,
    PriceOverridesError,
    Pricer,
    load_overrides,
)
from tests.support.database import make_settings

D = Decimal


@pytest.fixture
def pricer() -> Pricer:
    return Pricer(make_settings())


def write_overrides(
    tmp_path: Path, models: list[dict[str, Any]], name: str = "prices.json"
) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps({"models": models}))
    return path


# USD per million tokens (peers.md §5): sonnet-4.5 3/15 CW 3.75 CR 0.30; haiku-4.5 1/5/1.25/0.10;
# opus-4.1 15/75; gpt-4o 2.5/10 CR 1.25; gpt-4o-mini 0.15/0.60 CR 0.075. Our input excludes cache.
HAND_PRICED = [
    ("anthropic", "claude-sonnet-4-5", Usage(1000, 500), D("0.0105")),  # 3000 + 7500 µ$
    # 100×3 + 200×15 + 10000×0.30 + 2000×3.75 = 13800 µ$ (a double count would add 36000)
    ("anthropic", "claude-sonnet-4-5", Usage(100, 200, 10_000, 2000), D("0.0138")),
    ("anthropic", "claude-sonnet-4-5-20250929", Usage(1000, 500), D("0.0105")),
    # 2000×1 + 1000×5 + 5000×0.10 + 1000×1.25 = 8750 µ$
    ("anthropic", "claude-haiku-4-5", Usage(2000, 1000, 5000, 1000), D("0.00875")),
    ("anthropic", "claude-opus-4-1", Usage(1000, 1000), D("0.09")),  # 15000 + 75000 µ$
    # OpenAI prompt_tokens 3000 with 2000 cached → input 1000: 2500 + 2000×1.25 + 500×10 = 10000 µ$
    ("openai", "gpt-4o", Usage(1000, 500, 2000, 0), D("0.01")),
    # 1000×0.15 + 1000×0.60 + 1000×0.075 = 825 µ$
    ("openai", "gpt-4o-mini", Usage(1000, 1000, 1000, 0), D("0.000825")),
    ("openai-compatible", "gpt-4o-mini", Usage(1_000_000, 0), D("0.15")),
    ("openai", "gpt-4o-mini", Usage(cache_read_tokens=1), D("0.00000008")),  # 0.075 µ$ rounds up
    ("anthropic", "claude-haiku-4-5", Usage(), D("0")),
    # Sonnet 4.5 above 200k input tokens: the whole prompt at the 6 $/MTok tier (peers.md §5)
    ("anthropic", "claude-sonnet-4-5", Usage(300_000, 0), D("1.8")),
]


@pytest.mark.parametrize(
    ("provider", "model", "usage", "expected"),
    HAND_PRICED,
    ids=[
        f"{p}/{m}/{u.input_tokens}-{u.output_tokens}-{u.cache_read_tokens}-{u.cache_write_tokens}"
        for p, m, u, _ in HAND_PRICED
    ],
)
def test_price_known_model_equals_hand_computed_cost(
    pricer: Pricer, provider: str, model: str, usage: Usage, expected: Decimal
) -> None:
    price = pricer.price(provider, model, usage)

    assert price.cost_usd == expected
    assert price.known_model is True
    assert price.source == GENAI_SOURCE == f"genai-prices@{genai_prices.__version__}"


def test_price_cost_is_decimal_rounded_to_eight_places(pricer: Pricer) -> None:
    price = pricer.price("anthropic", "claude-haiku-4-5", Usage(7, 3, 1, 1))

    assert type(price.cost_usd) is Decimal
    assert price.cost_usd.as_tuple().exponent == -8


# Raw provider usage as genai-prices' own extractors read it, next to our Usage for the same call.
def anthropic_body(model: str, inp: int, out: int, read: int = 0, write: int = 0) -> dict[str, Any]:
    usage = {"input_tokens": inp, "output_tokens": out}
    if read or write:
        usage |= {"cache_read_input_tokens": read, "cache_creation_input_tokens": write}
    return {"model": model, "usage": usage}


def openai_body(model: str, prompt: int, completion: int, cached: int = 0) -> dict[str, Any]:
    usage: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion}
    if cached:
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    return {"model": model, "usage": usage}


RAW_USAGE = [
    ("anthropic", anthropic_body("claude-sonnet-4-5", 10, 7, 5, 3), Usage(10, 7, 5, 3)),
    (
        "anthropic",
        anthropic_body("claude-haiku-4-5", 1234, 321, 40_000, 900),
        Usage(1234, 321, 40_000, 900),
    ),
    ("anthropic", anthropic_body("claude-opus-4-1", 50, 5), Usage(50, 5)),
    (
        "anthropic",
        anthropic_body("claude-sonnet-4-5", 150_000, 2000, 60_000, 1000),
        Usage(150_000, 2000, 60_000, 1000),
    ),
    ("openai", openai_body("gpt-4o", 3000, 500, 2000), Usage(1000, 500, 2000)),
    ("openai", openai_body("gpt-4o-mini", 77, 11), Usage(77, 11)),
    ("openai", openai_body("gpt-4.1", 12_345, 678, 10_240), Usage(2105, 678, 10_240)),
    ("openai", openai_body("gpt-5-mini", 5000, 4000, 1024), Usage(3976, 4000, 1024)),
]


@pytest.mark.parametrize(
    ("provider", "body", "usage"), RAW_USAGE, ids=[b["model"] for _, b, _ in RAW_USAGE]
)
def test_price_equals_genai_prices_on_the_raw_provider_usage(
    pricer: Pricer, provider: str, body: dict[str, Any], usage: Usage
) -> None:
    """Our partitioned Usage, converted once, costs exactly what genai-prices computes from the
    provider's own response body — no cache token counted twice or dropped."""
    kwargs = {"api_flavor": "chat"} if provider == "openai" else {}
    expected = extract_usage(body, provider_id=provider, **kwargs).calc_price().total_price

    assert pricer.price(provider, body["model"], usage).cost_usd == expected.quantize(D("1e-8"))


def test_price_when_selects_the_price_in_force_at_that_time(pricer: Pricer) -> None:
    usage = Usage(1_000_000, 1_000_000)
    before = datetime(2025, 5, 1, tzinfo=UTC)

    old = pricer.price("openai", "o3", usage, when=before)
    new = pricer.price("openai", "o3", usage, when=datetime(2025, 7, 1))  # naive means UTC

    assert (
        old.cost_usd
        == calc_price(
            GPUsage(input_tokens=1_000_000, output_tokens=1_000_000),
            "o3",
            provider_id="openai",
            genai_request_timestamp=before,
        ).total_price
    )
    assert (old.cost_usd, new.cost_usd) == (D("50"), D("10"))


# --- fallback -----------------------------------------------------------------------------------
def test_price_unknown_model_uses_fallback_rates_and_warns_once_per_model(
    pricer: Pricer, caplog: pytest.LogCaptureFixture
) -> None:
    usage = Usage(1000, 1000, 1000, 1000)  # cache tokens at the input rate: 3000×15 + 1000×75
    with caplog.at_level(logging.WARNING, logger="app.core.pricing"):
        prices = [pricer.price("openai-compatible", "my-local-llama", usage) for _ in range(3)]
        pricer.price("anthropic", "claude-from-the-future", usage)

    assert {p.cost_usd for p in prices} == {D("0.12")}
    assert all(p.known_model is False and p.source == "fallback" for p in prices)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [
        ("my-local-llama" in r.getMessage(), "claude-from-the-future" in r.getMessage())
        for r in warnings
    ] == [(True, False), (False, True)]


def test_price_fallback_rates_come_from_settings() -> None:
    pricer = Pricer(
        make_settings(
            unknown_model_input_usd_per_mtok=D("2"), unknown_model_output_usd_per_mtok=D("8")
        )
    )

    price = pricer.price("openai", "unknown-model", Usage(1_000_000, 500_000, 1_000_000))

    assert price.cost_usd == D("8")  # 2 + 4 + 2
    assert price.known_model is False


def test_price_unknown_model_is_never_free(pricer: Pricer) -> None:
    assert pricer.price("some-provider", "anything", Usage(1, 1)).cost_usd > 0


# --- overrides ----------------------------------------------------------------------------------
def test_price_override_wins_over_genai_prices(tmp_path: Path) -> None:
    path = write_overrides(
        tmp_path,
        [
            {"model": "claude-sonnet-4-5", "input_mtok": 1, "output_mtok": "2.5"},
        ],
    )
    pricer = Pricer(make_settings(pricing_overrides_path=path))

    price = pricer.price("anthropic", "Claude-Sonnet-4-5", Usage(1_000_000, 1_000_000, 1_000_000))

    assert price.cost_usd == D("4.5")  # cache read defaults to the input rate
    assert price.source == "override:prices.json"
    assert price.known_model is True


def test_price_override_for_the_provider_beats_the_generic_entry(tmp_path: Path) -> None:
    path = write_overrides(
        tmp_path,
        [
            {"model": "llama-3.1-8b", "input_mtok": "1", "output_mtok": "1"},
            {
                "model": "llama-3.1-8b",
                "provider": "openai-compatible",
                "input_mtok": "0.1",
                "output_mtok": "0.4",
                "cache_read_mtok": "0.05",
                "cache_write_mtok": "0.2",
            },
        ],
    )
    pricer = Pricer(make_settings(pricing_overrides_path=path))
    usage = Usage(1_000_000, 1_000_000, 1_000_000, 1_000_000)

    assert pricer.price("openai-compatible", "llama-3.1-8b", usage).cost_usd == D("0.75")
    assert pricer.price("openai", "llama-3.1-8b", usage).cost_usd == D("4")


def test_price_override_decimal_strings_are_exact(tmp_path: Path) -> None:
    path = write_overrides(
        tmp_path,
        [
            {"model": "m", "input_mtok": "0.1", "output_mtok": 0.2},
        ],
    )
    price = Pricer(make_settings(pricing_overrides_path=path)).price("x", "m", Usage(3, 3))

    assert price.cost_usd == D("0.00000090")  # 0.3 + 0.6 µ$, no float residue


def test_example_overrides_file_is_packaged_and_valid() -> None:
    table = load_overrides(EXAMPLE_OVERRIDES)
    pricer = Pricer(make_settings(pricing_overrides_path=EXAMPLE_OVERRIDES))

    assert ("openai-compatible", "llama-3.1-8b-instruct") in table
    price = pricer.price("openai-compatible", "llama-3.1-8b-instruct", Usage(1_000_000, 1_000_000))
    assert price.cost_usd == D("0.5")
    assert price.source == "override:pricing_overrides.json"


INVALID_OVERRIDES = [
    ("not json", "{models: []", "not valid JSON"),
    ("no models", '{"comment": "x"}', "models"),
    (
        "unknown field",
        '{"models": [{"model": "m", "input_mtok": 1, "output_mtok": 1, "inptu": 2}]}',
        "inptu",
    ),
    (
        "typo in rate name",
        '{"models": [{"model": "m", "input_mtok": 1, "ouput_mtok": 1}]}',
        "output_mtok",
    ),
    (
        "negative rate",
        '{"models": [{"model": "m", "input_mtok": -1, "output_mtok": 1}]}',
        "input_mtok",
    ),
    (
        "NaN rate",
        '{"models": [{"model": "m", "input_mtok": "NaN", "output_mtok": 1}]}',
        "input_mtok",
    ),
    (
        "word rate",
        '{"models": [{"model": "m", "input_mtok": "cheap", "output_mtok": 1}]}',
        "input_mtok",
    ),
    ("empty model", '{"models": [{"model": "", "input_mtok": 1, "output_mtok": 1}]}', "model"),
    (
        "duplicate",
        '{"models": [{"model": "M", "input_mtok": 1, "output_mtok": 1},'
        ' {"model": "m", "input_mtok": 2, "output_mtok": 2}]}',
        "duplicate entry",
    ),
    ("a list", "[]", "invalid pricing overrides"),
]


@pytest.mark.parametrize(
    ("text", "mentions"), [c[1:] for c in INVALID_OVERRIDES], ids=[c[0] for c in INVALID_OVERRIDES]
)
def test_pricer_invalid_overrides_file_raises_at_construction(
    tmp_path: Path, text: str, mentions: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text)

    with pytest.raises(PriceOverridesError, match=mentions) as caught:
        Pricer(make_settings(pricing_overrides_path=path))

    assert str(path) in str(caught.value)


def test_pricer_missing_overrides_file_raises_at_construction(tmp_path: Path) -> None:
    with pytest.raises(PriceOverridesError, match="cannot read"):
        Pricer(make_settings(pricing_overrides_path=tmp_path / "missing.json"))


# --- worst case ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("provider", "model", "input_tokens", "max_output", "expected"),
    [
        ("anthropic", "claude-sonnet-4-5", 2000, 1024, D("0.02136")),  # 6000 + 15360 µ$
        ("openai", "gpt-4o-mini", 10_000, 1000, D("0.0021")),  # 1500 + 600 µ$
        ("openai-compatible", "nobody-knows", 1000, 1000, D("0.09")),  # fallback 15 + 75
    ],
)
def test_worst_case_cost_is_input_rate_plus_max_output_rate(
    pricer: Pricer,
    provider: str,
    model: str,
    input_tokens: int,
    max_output: int,
    expected: Decimal,
) -> None:
    cost = pricer.worst_case_cost(provider, model, input_tokens, max_output)

    assert cost == expected
    assert type(cost) is Decimal


def test_pricer_satisfies_the_port() -> None:
    port: PriceBook = Pricer(make_settings())

    assert port.price("openai", "gpt-4o", Usage(1, 1)).cost_usd == D("0.00001250")
