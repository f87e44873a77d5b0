"""Build the configured primary and fallback providers, one pooled HTTP client per provider.

Called once by the composition root (the app's lifespan), which closes them with `aclose()` on
shutdown. The fallback is only built when configured; a fallback of the same provider (another
model, say) shares the primary's adapter and pool — the model travels in each request.
"""

from __future__ import annotations

from typing import NamedTuple

import httpx

from app.config import ConfiguredProvider, Settings, configured_providers
from app.llm.anthropic import AnthropicProvider
from app.llm.caching import anthropic_cache
from app.llm.http import build_client
from app.llm.openai import OpenAIProvider

Adapter = AnthropicProvider | OpenAIProvider
USER_AGENT = "chat-stream/0.1"


class Providers(NamedTuple):
    """`primary, fallback = build_providers(settings)`; `await providers.aclose()` at shutdown."""

    primary: Adapter
    fallback: Adapter | None

    async def aclose(self) -> None:
        """Close the connection pools (each once, even when both roles share an adapter)."""
        for adapter in {id(a): a for a in (self.primary, self.fallback) if a is not None}.values():
            await adapter.aclose()


def build_providers(settings: Settings) -> Providers:
    built: dict[str, Adapter] = {}
    configured = configured_providers(settings)
    for provider in configured:
        if provider.name not in built:
            built[provider.name] = _build(provider, settings)
    primary, *fallback = (built[p.name] for p in configured)
    return Providers(primary, fallback[0] if fallback else None)


def _build(provider: ConfiguredProvider, settings: Settings) -> Adapter:
    key = provider.api_key.get_secret_value()
    if provider.name == "anthropic":
        headers = {"anthropic-version": settings.anthropic_version, "user-agent": USER_AGENT}
        if key:
            headers["x-api-key"] = key
        cache = anthropic_cache(settings.llm_prompt_cache, settings.anthropic_version)
        client = _client(settings, provider.base_url, headers)
        return AnthropicProvider(client, cache=cache)
    headers = {"user-agent": USER_AGENT}
    if key:
        headers["authorization"] = f"Bearer {key}"
    client = _client(settings, provider.base_url, headers)
    return OpenAIProvider(client, name=provider.name, cache=settings.llm_prompt_cache)


def _client(settings: Settings, base_url: str, headers: dict[str, str]) -> httpx.AsyncClient:
    return build_client(
        base_url,
        headers,
        connect_timeout=settings.llm_connect_timeout,
        idle_timeout=settings.llm_idle_timeout,
        pool_timeout=settings.llm_availability_budget,
        transport=settings.llm_http_transport,
        keepalive_seconds=settings.llm_keepalive_seconds,
    )
