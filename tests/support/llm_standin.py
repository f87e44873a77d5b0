"""The LLM stand-in on loopback and the provider adapters pointed at it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio

from app.core.domain import ChatMessage, CompletionRequest
from app.llm.factory import Adapter, build_providers
from app.local.llm.api import StandIn
from app.local.llm.ledger import LedgerEntry
from app.local.llm.prompt import ANSWER_TOKENS, answer_tokens
from tests.support.database import make_settings

APIS = ["anthropic", "openai"]


MODELS = {"anthropic": "claude-sonnet-4-6", "openai": "gpt-4o-mini", "openai-compatible": "llama"}


@dataclass
class StandinServer:
    url: str
    standin: StandIn

    def last(self) -> LedgerEntry:
        return self.standin.ledger.entries()[-1]

    async def wait_closed(self, entry: LedgerEntry) -> LedgerEntry:
        """Poll until the stand-in has recorded the end of `entry`'s request. Async, so the
        client's loop keeps running: some transports close their socket on the next iteration."""
        with anyio.move_on_after(3.0):
            while entry.is_open:  # noqa: ASYNC110 - the ledger lives in another thread
                await anyio.sleep(0.002)
        assert not entry.is_open, f"stand-in never saw the end of {entry}"
        return entry


def expected_text(question: str, tokens: int) -> str:
    return "".join(ANSWER_TOKENS[i] for i in answer_tokens(question, tokens))


def completion(text: str, api: str = "anthropic", *, max_tokens: int = 1024) -> CompletionRequest:
    return CompletionRequest(
        model=MODELS[api],
        system="You are a warm coach.",
        messages=(ChatMessage("user", text),),
        max_tokens=max_tokens,
        temperature=0.7,
        user_id="5f0c7a4e-0000-4000-8000-000000000001",
    )


@contextlib.asynccontextmanager
async def provider_for(
    server: StandinServer, api: str, *, key: str = "test-key", **settings: object
) -> AsyncIterator[Adapter]:
    """The factory's primary adapter for `api`, pointed at the stand-in; pools closed after."""
    providers = build_providers(
        make_settings(
            llm_provider=api,
            anthropic_base_url=f"{server.url}",
            openai_base_url=f"{server.url}/v1",
            anthropic_api_key=key,
            openai_api_key=key,
            **settings,
        )
    )
    try:
        yield providers.primary
    finally:
        await providers.aclose()


class ProviderOpener:
    """`async with opener(api, **settings) as provider` — over one HTTP transport."""

    def __init__(self, server: StandinServer, transport: str) -> None:
        self.server, self.transport = server, transport

    def __call__(
        self, api: str, **settings: object
    ) -> contextlib.AbstractAsyncContextManager[Adapter]:
        settings.setdefault("llm_http_transport", self.transport)
        return provider_for(self.server, api, **settings)
