"""The relay's availability deadline judges the provider, not the worker's own loop lag."""

from __future__ import annotations

import asyncio

import pytest

from app.chat.accounting import Attempt
from app.chat.relay import Deadlines, relay
from app.core.domain import ChatMessage, CompletionRequest, TextDelta
from app.errors import ProviderTimeout
from tests.chat.fakes import ScriptedProvider, answer

pytestmark = pytest.mark.anyio

REQUEST = CompletionRequest(
    model="m", system="s", messages=(ChatMessage("user", "hi"),), max_tokens=10, temperature=0.0
)


async def collect(provider: ScriptedProvider, head_in: float, grace: float) -> list[str]:
    loop = asyncio.get_running_loop()
    now = loop.time()
    deadlines = Deadlines(head=now + head_in, total=now + 30, idle=10)
    attempts: list[Attempt] = []
    return [
        d.text
        async for d in relay([(provider, "m")], REQUEST, attempts, deadlines, lambda: grace)
        if isinstance(d, TextDelta)
    ]


async def test_relay_head_after_the_deadline_within_the_measured_lag_is_served() -> None:
    # The head comes 0.3 s after a 0.05 s deadline; the loop says it runs 5 s late.
    provider = ScriptedProvider(head=0.3, steps=answer(["a", "b"]))

    assert await collect(provider, head_in=0.05, grace=5.0) == ["a", "b"]


async def test_relay_head_after_the_deadline_without_lag_times_out() -> None:
    provider = ScriptedProvider(head=0.3, steps=answer(["a", "b"]))

    with pytest.raises(ProviderTimeout):
        await collect(provider, head_in=0.05, grace=0.0)
    assert provider.opened == 0
