"""Provider-reported cost: OpenRouter's `usage.cost` read exactly, anything else is "not said"."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.core.domain import UsageReport
from app.llm.openai import OpenAIProvider
from app.llm.reported_cost import reported_cost
from tests.support.llm_standin import completion

TOKENS = {"prompt_tokens": 194, "completion_tokens": 2, "total_tokens": 196}


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        ({"cost": 0.00123}, Decimal("0.00123")),
        ({"cost": 0}, Decimal(0)),
        ({"cost": 1e-7}, Decimal("1E-7")),
        ({"cost": 3}, Decimal(3)),
        ({}, None),
        ({"cost": None}, None),
        ({"cost": "0.5"}, None),
        ({"cost": True}, None),
        ({"cost": -0.01}, None),
        ({"cost": float("nan")}, None),
        ({"cost": float("inf")}, None),
        # Bring your own key: `cost` is only OpenRouter's fee; the upstream bills on top.
        ({"cost": 0.001, "is_byok": True, "cost_details": {"upstream_inference_cost": 0.02}},
         Decimal("0.021")),
        ({"cost": 0.001, "is_byok": True}, Decimal("0.001")),
        ({"cost": 0.001, "is_byok": True, "cost_details": {"upstream_inference_cost": "x"}},
         Decimal("0.001")),
        # Not BYOK: the upstream's share is already inside `cost`.
        ({"cost": 0.02, "is_byok": False, "cost_details": {"upstream_inference_cost": 0.019}},
         Decimal("0.02")),
    ],
)  # fmt: skip
def test_reported_cost_reads_openrouter_usage(usage: dict[str, Any], expected: Decimal) -> None:
    assert reported_cost(TOKENS | usage) == expected


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)


@given(
    st.dictionaries(
        st.sampled_from(["cost", "is_byok", "cost_details", "prompt_tokens"]) | st.text(), _JSON
    )
)
def test_reported_cost_hostile_usage_is_none_or_a_non_negative_decimal(usage: Any) -> None:
    cost = reported_cost(usage)

    assert cost is None or (isinstance(cost, Decimal) and cost.is_finite() and cost >= 0)


@pytest.mark.anyio
async def test_openai_stream_usage_chunk_with_cost_reports_it_next_to_the_tokens() -> None:
    chunks = [
        {"choices": [{"index": 0, "delta": {"content": "Hi"}}], "usage": None},
        {"choices": [], "model": "openai/gpt-4o-mini", "usage": TOKENS | {"cost": 0.0004215}},
    ]
    body = b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"

    def handler(_: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url="http://upstream")
    provider = OpenAIProvider(client, name="openai-compatible")
    async with provider.stream(completion("hi", "openai")) as events:
        reports = [e async for e in events if isinstance(e, UsageReport)]
    await client.aclose()

    assert [(r.provider_cost_usd, r.usage.output_tokens) for r in reports] == [
        (Decimal("0.0004215"), 2)
    ]
