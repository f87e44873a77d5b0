"""Pure parsing edge cases of both adapters, over `httpx.MockTransport` (no server needed)."""

from __future__ import annotations

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.core.domain import ProviderEvent, TextDelta, Usage, UsageReport
from app.errors import ProviderError, ProviderStreamError, ProviderUnavailable
from app.llm.anthropic import AnthropicProvider
from app.llm.openai import OpenAIProvider, payload, usage_from
from tests.support.llm_standin import completion

pytestmark = pytest.mark.anyio
SSE = {"content-type": "text/event-stream"}


def _anthropic_sse(*events: tuple[str, object]) -> bytes:
    return b"".join(
        b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"
        for name, data in events
    )


def _openai_sse(*chunks: object, done: bool = True) -> bytes:
    body = b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks)
    return body + (b"data: [DONE]\n\n" if done else b"")


def _provider(
    api: str, body: bytes, *, status: int = 200, headers: dict[str, str] | None = None
) -> AnthropicProvider | OpenAIProvider:
    def handler(_: httpx.Request) -> httpx.Response:
        return httpx.Response(status, headers=headers if headers is not None else SSE, content=body)

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url="http://upstream")
    return AnthropicProvider(client) if api == "anthropic" else OpenAIProvider(client)


async def _events(provider: AnthropicProvider | OpenAIProvider, api: str) -> list[ProviderEvent]:
    async with provider.stream(completion("hi", api)) as events:
        return [e async for e in events]


def _usages(events: list[ProviderEvent]) -> list[Usage]:
    return [e.usage for e in events if isinstance(e, UsageReport)]


START = (
    "message_start",
    {
        "type": "message_start",
        "message": {
            "model": "claude-x",
            "usage": {
                "input_tokens": 10,
                "cache_read_input_tokens": 5,
                "cache_creation_input_tokens": 3,
                "output_tokens": 1,
            },
        },
    },
)
STOP = ("message_stop", {"type": "message_stop"})


def _delta(text: str) -> tuple[str, object]:
    return (
        "content_block_delta",
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}},
    )


async def test_anthropic_message_delta_repeating_input_tokens_overrides_the_start() -> None:
    final = {"output_tokens": 7, "input_tokens": 12, "cache_read_input_tokens": 5}
    body = _anthropic_sse(START, _delta("Hi"), ("message_delta", {"usage": final}), STOP)
    usages = _usages(await _events(_provider("anthropic", body), "anthropic"))
    assert usages[0] == Usage(10, 1, cache_read_tokens=5, cache_write_tokens=3)
    assert usages[-1] == Usage(12, 7, cache_read_tokens=5, cache_write_tokens=3)


async def test_anthropic_message_delta_with_output_only_keeps_the_start_input() -> None:
    body = _anthropic_sse(START, ("message_delta", {"usage": {"output_tokens": 9}}), STOP)
    usage = _usages(await _events(_provider("anthropic", body), "anthropic"))[-1]
    assert usage == Usage(10, 9, cache_read_tokens=5, cache_write_tokens=3)


async def test_anthropic_ignores_pings_thinking_and_unknown_events() -> None:
    thinking = {"type": "content_block_delta", "delta": {"type": "thinking_delta", "thinking": "…"}}
    body = _anthropic_sse(
        START,
        ("ping", {"type": "ping"}),
        ("content_block_delta", thinking),
        ("brand_new_event", {"type": "brand_new_event"}),
        _delta("Hello"),
        _delta(" there"),
        STOP,
    )
    events = await _events(_provider("anthropic", body), "anthropic")
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Hello", " there"]


@pytest.mark.parametrize(
    "body",
    [
        _anthropic_sse(START, _delta("a")),  # no message_stop
        _anthropic_sse(START, ("content_block_delta", [1, 2])) + _anthropic_sse(STOP),
        b"event: content_block_delta\ndata: {not json\n\n",
        _anthropic_sse(("error", {"type": "error", "error": {"type": "api_error"}})),
    ],
    ids=["no-terminal-event", "not-an-object", "bad-json", "error-event"],
)
async def test_anthropic_broken_stream_raises_stream_error(body: bytes) -> None:
    with pytest.raises(ProviderStreamError):
        await _events(_provider("anthropic", body), "anthropic")


def _chunk(content: str | None = None, *, usage: object = None) -> dict[str, object]:
    """A chat.completion.chunk; with `usage` it is the final usage chunk (empty choices)."""
    choice = {"index": 0, "delta": {"content": content}, "finish_reason": None}
    return {
        "object": "chat.completion.chunk",
        "model": "gpt-x",
        "choices": [] if usage else [choice],
        "usage": usage,
    }


async def test_openai_chunks_with_null_usage_report_nothing_until_the_usage_chunk() -> None:
    final = {
        "prompt_tokens": 2000,
        "completion_tokens": 3,
        "prompt_tokens_details": {"cached_tokens": 1536},
    }
    body = _openai_sse(_chunk(""), _chunk("Hi"), _chunk(" you"), _chunk(usage=final))
    events = await _events(_provider("openai", body), "openai")
    assert [type(e) for e in events] == [TextDelta, TextDelta, UsageReport]
    assert _usages(events) == [Usage(input_tokens=464, output_tokens=3, cache_read_tokens=1536)]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"prompt_tokens": 50, "completion_tokens": 5}, Usage(50, 5)),
        ({"prompt_tokens": 50, "prompt_tokens_details": None}, Usage(50, 0)),
        (
            {"prompt_tokens": 50, "prompt_tokens_details": {"cached_tokens": None}},
            Usage(50, 0),
        ),
        (
            {
                "prompt_tokens": 3000,
                "prompt_tokens_details": {"cached_tokens": 1024, "cache_write_tokens": 500},
            },
            Usage(1476, 0, cache_read_tokens=1024, cache_write_tokens=500),
        ),
    ],
    ids=["no-details", "null-details", "null-cached", "cache-write"],
)
def test_openai_usage_prices_every_prompt_token_once(
    raw: dict[str, object], expected: Usage
) -> None:
    usage = usage_from(raw)
    assert usage == expected
    assert usage.prompt_tokens == raw["prompt_tokens"]


@pytest.mark.parametrize(
    "body",
    [
        _openai_sse(_chunk("a"), done=False),
        _openai_sse({"error": {"message": "boom", "type": "server_error"}}),
        b'data: {"choices": [\n\n',
    ],
    ids=["no-done", "error-object", "bad-json"],
)
async def test_openai_broken_stream_raises_stream_error(body: bytes) -> None:
    with pytest.raises(ProviderStreamError):
        await _events(_provider("openai", body), "openai")


@pytest.mark.parametrize("api", ["anthropic", "openai"])
async def test_provider_200_that_is_not_an_event_stream_is_unavailable(api: str) -> None:
    provider = _provider(api, b'{"ok": true}', headers={"content-type": "application/json"})
    with pytest.raises(ProviderUnavailable):
        await _events(provider, api)


@pytest.mark.parametrize("api", ["anthropic", "openai"])
async def test_provider_error_page_that_is_not_json_keeps_a_readable_detail(api: str) -> None:
    html = {"content-type": "text/html"}
    provider = _provider(api, b"<html>Bad Gateway</html>", status=502, headers=html)
    with pytest.raises(ProviderUnavailable) as caught:
        await _events(provider, api)
    assert caught.value.retryable is True
    assert "HTTP 502" in caught.value.detail and "Bad Gateway" in caught.value.detail


@pytest.mark.parametrize(
    ("model", "official", "has_temperature", "limit_key"),
    [
        ("gpt-4o-mini", True, True, "max_completion_tokens"),
        ("gpt-5-mini", True, False, "max_completion_tokens"),
        ("o3", True, False, "max_completion_tokens"),
        ("llama-3.1-8b", False, True, "max_tokens"),
    ],
)
def test_openai_payload_speaks_the_dialect_of_the_server(
    model: str, official: bool, has_temperature: bool, limit_key: str
) -> None:
    request = completion("hi", "openai")
    body = payload(type(request)(**{**request.__dict__, "model": model}), official=official)
    assert ("temperature" in body) is has_temperature
    assert body[limit_key] == request.max_tokens
    assert body["stream_options"] == {"include_usage": True}
    assert body["messages"][0] == {"role": "system", "content": request.system}


_sse_field = st.sampled_from(["event: ", "data: ", ": ", "id: ", "retry: ", ""])
_sse_lines = st.lists(
    st.tuples(_sse_field, st.text(max_size=40)).map(lambda t: t[0] + t[1].replace("\r", "")),
    max_size=12,
).map(lambda lines: "\n".join(lines).encode())


TERMINAL = {"anthropic": b"\n\n" + _anthropic_sse(STOP), "openai": b"\n\ndata: [DONE]\n\n"}


@pytest.mark.parametrize("api", ["anthropic", "openai"])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(noise=_sse_lines, terminated=st.booleans())
async def test_provider_hostile_stream_raises_only_provider_errors(
    api: str, noise: bytes, terminated: bool
) -> None:
    body = noise + (TERMINAL[api] if terminated else b"")
    try:
        events = await _events(_provider(api, body), api)
    except ProviderError:
        return
    assert all(isinstance(e, TextDelta | UsageReport) for e in events)
