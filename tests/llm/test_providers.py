"""Both adapters against the stand-in over real HTTP: deltas, usage, faults, disconnects."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import anyio
import pytest

from app.core.domain import ProviderEvent, TextDelta, Usage, UsageReport
from app.errors import ProviderStreamError, ProviderTimeout, ProviderUnavailable
from app.local.postgres import free_port
from tests.support.llm_standin import (
    APIS,
    ProviderOpener,
    StandinServer,
    completion,
    expected_text,
    provider_for,
)

pytestmark = pytest.mark.anyio


async def _collect(open_provider: ProviderOpener, api: str, text: str) -> list[ProviderEvent]:
    async with open_provider(api) as provider:
        async with provider.stream(completion(text, api)) as events:
            return [event async for event in events]


async def _drain(events: AsyncIterator[ProviderEvent], deltas: list[str]) -> None:
    """Consume `events`, keeping the text deltas, until the stream ends or raises."""
    async for event in events:
        if isinstance(event, TextDelta):
            deltas.append(event.text)


def _text(events: list[ProviderEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def _final_usage(events: list[ProviderEvent]) -> UsageReport:
    reports = [e for e in events if isinstance(e, UsageReport)]
    assert reports, "no usage reported"
    return reports[-1]


@pytest.mark.parametrize("api", APIS)
async def test_provider_stream_yields_deltas_in_order_then_usage(
    api: str, open_provider: ProviderOpener, standin_server: StandinServer
) -> None:
    question = "How do I start running again? [[standin tokens=25]]"
    events = await _collect(open_provider, api, question)
    entry = standin_server.last()

    assert [type(e) for e in events].count(TextDelta) == 25
    assert _text(events) == expected_text(question, 25)
    assert isinstance(events[-1], UsageReport), "usage arrives after the last delta"
    report = _final_usage(events)
    assert report.usage == Usage(input_tokens=entry.input_tokens, output_tokens=25)
    assert report.model == completion(question, api).model
    assert entry.outcome == "completed"


async def test_anthropic_usage_carries_cache_read_and_write_tokens(
    open_provider: ProviderOpener, standin_server: StandinServer
) -> None:
    question = "Plan my week [[standin tokens=5 cache_read=1200 cache_write=300]]"
    events = await _collect(open_provider, "anthropic", question)
    usage = _final_usage(events).usage
    entry = standin_server.last()
    assert (usage.cache_read_tokens, usage.cache_write_tokens) == (1200, 300)
    assert usage.input_tokens == entry.input_tokens  # Anthropic's input already excludes caches
    assert usage.output_tokens == 5


async def test_openai_usage_moves_cached_tokens_out_of_prompt_tokens(
    open_provider: ProviderOpener, standin_server: StandinServer
) -> None:
    question = "Plan my week [[standin tokens=5 cache_read=1024]]"
    events = await _collect(open_provider, "openai", question)
    usage = _final_usage(events).usage
    entry = standin_server.last()
    assert usage.cache_read_tokens == 1024
    assert usage.input_tokens == entry.input_tokens  # uncached part only
    assert usage.prompt_tokens == entry.input_tokens + 1024  # the wire's prompt_tokens, priced once


async def test_openai_compatible_streams_through_the_same_adapter(
    open_provider: ProviderOpener, standin_server: StandinServer
) -> None:
    question = "Hello [[standin tokens=4]]"
    events = await _collect(open_provider, "openai-compatible", question)
    assert _text(events) == expected_text(question, 4)
    assert _final_usage(events).usage.output_tokens == 4


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("fault", ["500", "503", "429", "529", "refuse"])
async def test_provider_failure_before_head_raises_retryable_unavailable_on_enter(
    api: str, fault: str, open_provider: ProviderOpener, standin_server: StandinServer
) -> None:
    async with open_provider(api) as provider:
        with pytest.raises(ProviderUnavailable) as caught:
            async with provider.stream(completion(f"hi [[standin fault={fault}]]", api)):
                pytest.fail("the context must not be entered")
    assert caught.value.retryable is True
    expected_outcome = "refused" if fault == "refuse" else "http_"
    assert standin_server.last().outcome.startswith(expected_outcome)
    assert standin_server.last().output_tokens == 0


@pytest.mark.parametrize(
    ("api", "fault", "upstream_type"),
    [
        ("anthropic", "429", "rate_limit_error"),
        ("anthropic", "529", "overloaded_error"),
        ("openai", "429", "requests"),
        ("openai", "529", "server_error"),
    ],
)
async def test_provider_throttled_or_overloaded_names_the_upstream_error_type(
    api: str, fault: str, upstream_type: str, open_provider: ProviderOpener
) -> None:
    request = completion(f"x [[standin fault={fault} retry_after=7]]", api)
    async with open_provider(api) as provider:
        with pytest.raises(ProviderUnavailable) as caught:
            async with provider.stream(request):
                pass
    assert caught.value.retryable is True
    assert upstream_type in caught.value.detail
    if fault == "429":
        assert "retry-after 7" in caught.value.detail


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("fault", ["400", "401", "403", "404"])
async def test_provider_client_error_is_not_retryable(
    api: str, fault: str, open_provider: ProviderOpener, standin_server: StandinServer
) -> None:
    async with open_provider(api) as provider:
        with pytest.raises(ProviderUnavailable) as caught:
            async with provider.stream(completion(f"x [[standin fault={fault}]]", api)):
                pass
    assert caught.value.retryable is False
    assert f"HTTP {fault}" in caught.value.detail


@pytest.mark.parametrize("api", APIS)
async def test_provider_without_api_key_gets_non_retryable_401(
    api: str, open_provider: ProviderOpener, standin_server: StandinServer
) -> None:
    async with open_provider(api, key="") as provider:
        with pytest.raises(ProviderUnavailable) as caught:
            async with provider.stream(completion("hello", api)):
                pass
    assert caught.value.retryable is False
    assert "HTTP 401" in caught.value.detail


@pytest.mark.parametrize("transport", ["httpx", "aiohttp"])
async def test_provider_connection_refused_is_retryable_unavailable(transport: str) -> None:
    server = StandinServer(f"http://127.0.0.1:{free_port()}", standin=None)  # type: ignore[arg-type]
    async with provider_for(server, "anthropic", llm_http_transport=transport) as provider:
        with pytest.raises(ProviderUnavailable) as caught:
            async with provider.stream(completion("hello")):
                pass
    assert caught.value.retryable is True


@pytest.mark.parametrize("api", APIS)
async def test_provider_hang_before_head_times_out_on_enter(
    api: str, open_provider: ProviderOpener, standin_server: StandinServer
) -> None:
    async with open_provider(api, llm_idle_timeout=0.3) as provider:
        started = time.monotonic()
        with pytest.raises(ProviderTimeout):
            async with provider.stream(completion("x [[standin fault=hang]]", api)):
                pass
    assert time.monotonic() - started < 2.0
    entry = await standin_server.wait_closed(standin_server.last())
    assert entry.client_disconnected is True


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("fault", ["drop", "error", "malformed", "truncate"])
async def test_provider_mid_stream_fault_raises_stream_error_after_the_sent_deltas(
    api: str, fault: str, open_provider: ProviderOpener, standin_server: StandinServer
) -> None:
    deltas: list[str] = []
    request = completion(f"x [[standin fault={fault} after=4]]", api)
    async with open_provider(api) as provider, provider.stream(request) as events:
        with pytest.raises(ProviderStreamError) as caught:
            await _drain(events, deltas)
    assert len(deltas) == 4
    assert caught.value.retryable is False
    if fault == "error" and api == "anthropic":
        assert "overloaded_error" in caught.value.detail


@pytest.mark.parametrize("api", APIS)
async def test_provider_stall_mid_stream_times_out_while_iterating(
    api: str, open_provider: ProviderOpener, standin_server: StandinServer
) -> None:
    deltas: list[str] = []
    request = completion("x [[standin fault=stall after=3]]", api)
    async with open_provider(api, llm_idle_timeout=0.3) as provider:
        async with provider.stream(request) as events:
            with pytest.raises(ProviderTimeout):
                await _drain(events, deltas)
    assert len(deltas) == 3


@pytest.mark.parametrize("api", APIS)
async def test_provider_leaving_the_context_early_closes_upstream_within_100ms(
    api: str, open_provider: ProviderOpener, standin_server: StandinServer
) -> None:
    question = "x [[standin tokens=500 delay_ms=10]]"
    async with open_provider(api) as provider:
        async with provider.stream(completion(question, api)) as events:
            seen = 0
            async for event in events:
                seen += isinstance(event, TextDelta)
                if seen == 3:
                    break
            entry = standin_server.last()
            left_at = time.monotonic()
        entry = await standin_server.wait_closed(entry)
    assert entry.client_disconnected is True
    assert entry.outcome == "client_disconnected"
    assert 3 <= entry.output_tokens < 500, "billed only for what was generated before leaving"
    assert entry.closed_at is not None
    assert entry.closed_at - left_at < 0.1


@pytest.mark.parametrize("api", APIS)
async def test_provider_cancelled_while_waiting_for_the_head_closes_upstream(
    api: str, open_provider: ProviderOpener, standin_server: StandinServer
) -> None:
    async with open_provider(api) as provider:
        with anyio.move_on_after(0.3):
            async with provider.stream(completion("x [[standin head_ms=5000]]", api)):
                pytest.fail("the head should not have arrived")
        cancelled_at = time.monotonic()
        entry = await standin_server.wait_closed(standin_server.last())
    assert entry.client_disconnected is True
    assert entry.closed_at is not None and entry.closed_at - cancelled_at < 0.1


@pytest.mark.parametrize("api", APIS)
async def test_provider_reuses_the_pooled_connection_after_a_complete_stream(
    api: str, open_provider: ProviderOpener, standin_server: StandinServer
) -> None:
    async with open_provider(api) as provider:
        for _ in range(3):
            async with provider.stream(completion("again [[standin tokens=3]]", api)) as events:
                assert len([e async for e in events]) >= 3
    clients = {e.client for e in standin_server.standin.ledger.entries()[-3:]}
    assert len(clients) == 1, f"each stream opened a new connection: {clients}"
