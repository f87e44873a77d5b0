"""The factory builds one pooled client per provider, with the right base URL, auth and limits."""

from __future__ import annotations

import httpx
import pytest

from app.core.ports import Provider
from app.llm.aiohttp_transport import HonestAiohttpTransport
from app.llm.anthropic import AnthropicProvider
from app.llm.factory import build_providers
from app.llm.openai import OpenAIProvider
from tests.support.database import make_settings

pytestmark = pytest.mark.anyio


def _client(adapter: object) -> httpx.AsyncClient:
    client = adapter._client  # type: ignore[attr-defined]
    assert isinstance(client, httpx.AsyncClient)
    return client


async def test_build_providers_without_fallback_gives_one_anthropic_adapter() -> None:
    providers = build_providers(
        make_settings(anthropic_api_key="sk-ant-test", llm_connect_timeout=1.5, llm_idle_timeout=9)
    )
    primary, fallback = providers
    assert isinstance(primary, AnthropicProvider) and fallback is None
    client = _client(primary)
    assert str(client.base_url.join("v1/messages")) == "https://api.anthropic.com/v1/messages"
    assert client.headers["x-api-key"] == "sk-ant-test"
    assert client.headers["anthropic-version"] == "2023-06-01"
    assert (client.timeout.connect, client.timeout.read) == (1.5, 9)
    await providers.aclose()
    assert client.is_closed


async def test_build_providers_same_provider_fallback_shares_the_adapter_and_pool() -> None:
    providers = build_providers(
        make_settings(llm_fallback_provider="anthropic", llm_fallback_model="claude-haiku-4-5")
    )
    assert providers.primary is providers.fallback
    await providers.aclose()  # closing twice would be harmless, but it closes once
    assert _client(providers.primary).is_closed


async def test_build_providers_openai_compatible_fallback_has_its_own_pool_and_no_auth() -> None:
    providers = build_providers(
        make_settings(
            llm_provider="anthropic",
            llm_fallback_provider="openai-compatible",
            openai_base_url="http://127.0.0.1:9/v1",
        )
    )
    fallback = providers.fallback
    assert isinstance(fallback, OpenAIProvider) and fallback.name == "openai-compatible"
    client = _client(fallback)
    assert str(client.base_url.join("chat/completions")) == "http://127.0.0.1:9/v1/chat/completions"
    assert "authorization" not in client.headers
    assert _client(providers.primary) is not client
    await providers.aclose()


@pytest.mark.parametrize(
    ("setting", "transport_type"),
    [("aiohttp", HonestAiohttpTransport), ("httpx", httpx.AsyncHTTPTransport)],
)
async def test_build_providers_honours_the_http_transport_setting(
    setting: str, transport_type: type
) -> None:
    providers = build_providers(
        make_settings(llm_provider="openai", openai_api_key="sk-test", llm_http_transport=setting)
    )
    client = _client(providers.primary)
    assert isinstance(client._transport, transport_type)
    assert client.headers["authorization"] == "Bearer sk-test"
    await providers.aclose()


def test_adapters_satisfy_the_provider_port() -> None:
    providers = build_providers(make_settings(llm_fallback_provider="openai"))
    ports: list[Provider] = [providers.primary, providers.fallback]  # type-checked by mypy
    assert [p.name for p in ports] == ["anthropic", "openai"]
