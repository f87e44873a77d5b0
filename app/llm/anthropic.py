"""Anthropic Messages API adapter: `POST {base}/v1/messages` with `stream: true`.

Event sequence: message_start (usage: input, cache read, cache creation) → content_block_start →
ping → content_block_delta (text_delta)… → content_block_stop → message_delta (stop_reason and
the cumulative usage, output tokens at least) → message_stop. An `error` event may arrive at any
point (e.g. `overloaded_error`). Usage.input_tokens is Anthropic's `input_tokens` as is: it
already excludes cache reads and writes.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import httpx
from httpx_sse import EventSource

from app.core.domain import CompletionRequest, ProviderEvent, TextDelta, Usage, UsageReport
from app.errors import ProviderStreamError
from app.llm.caching import EPHEMERAL, AnthropicCache
from app.llm.http import Events, parse_object, stream_events, translate_errors
from app.llm.sse_read import read_events

MESSAGES_PATH = "v1/messages"  # relative to the base URL, as the official SDK does


class AnthropicProvider:
    """Streams one answer per request over a shared connection pool (the factory's client)."""

    name = "anthropic"

    def __init__(self, client: httpx.AsyncClient, *, cache: AnthropicCache = "off") -> None:
        self._client = client
        self.cache = cache

    def stream(
        self, request: CompletionRequest
    ) -> contextlib.AbstractAsyncContextManager[AsyncIterator[ProviderEvent]]:
        body = payload(request, cache=self.cache)
        return stream_events(self._client, self.name, MESSAGES_PATH, body, _events)

    async def aclose(self) -> None:
        await self._client.aclose()


def payload(request: CompletionRequest, *, cache: AnthropicCache = "off") -> dict[str, Any]:
    """The Messages request. `cache` (app.llm.caching) adds the prompt-cache markers: one
    top-level `cache_control` (automatic), or breakpoints on the system block and on the last
    message's last block (explicit). The text itself is the same bytes in every form."""
    messages: list[dict[str, Any]] = [
        {"role": m.role, "content": m.content} for m in request.messages
    ]
    body: dict[str, Any] = {
        "model": request.model,
        "max_tokens": request.max_tokens,
        # Anthropic accepts 0..1; the shared setting allows OpenAI's 0..2.
        "temperature": min(request.temperature, 1.0),
        "messages": messages,
        "stream": True,
    }
    if request.system:
        body["system"] = request.system
    if request.user_id:
        body["metadata"] = {"user_id": request.user_id}
    if cache == "automatic":
        body["cache_control"] = dict(EPHEMERAL)
    elif cache == "explicit":
        if request.system:
            body["system"] = [_text_block(request.system)]
        if messages:
            messages[-1]["content"] = [_text_block(messages[-1]["content"])]
    return body


def _text_block(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text, "cache_control": dict(EPHEMERAL)}


def _usage(raw: object, previous: Usage) -> Usage:
    """Merge a usage object into what is known: present fields win (the counts are cumulative)."""
    if not isinstance(raw, Mapping):
        return previous

    def pick(key: str, old: int) -> int:
        value = raw.get(key)
        return int(value) if isinstance(value, int | float) else old

    return Usage(
        input_tokens=pick("input_tokens", previous.input_tokens),
        output_tokens=pick("output_tokens", previous.output_tokens),
        cache_read_tokens=pick("cache_read_input_tokens", previous.cache_read_tokens),
        cache_write_tokens=pick("cache_creation_input_tokens", previous.cache_write_tokens),
    )


async def _events(source: EventSource, first_token: Callable[[], None] | None) -> Events:
    provider = AnthropicProvider.name
    usage, model, finished = Usage(), None, False
    with translate_errors(provider, streaming=True):
        async with contextlib.aclosing(read_events(source.response)) as sse_events:
            async for kind, data in sse_events:
                if finished:  # read on to the end of the body: the connection goes back to the pool
                    continue
                if kind == "content_block_delta":
                    delta = parse_object(provider, data).get("delta")
                    if isinstance(delta, dict) and delta.get("type") == "text_delta":
                        if text := delta.get("text"):
                            if first_token is not None:
                                first_token()
                                first_token = None
                            yield TextDelta(text)
                elif kind == "message_start":
                    message = parse_object(provider, data).get("message")
                    if isinstance(message, dict):
                        model = message.get("model") or model
                        usage = _usage(message.get("usage"), usage)
                        yield UsageReport(usage, model)
                elif kind == "message_delta":
                    raw = parse_object(provider, data).get("usage")
                    if isinstance(raw, dict):
                        usage = _usage(raw, usage)
                        yield UsageReport(usage, model)
                elif kind == "message_stop":
                    finished = True
                elif kind == "error":
                    raise ProviderStreamError(f"{provider}: error event: {_describe(data)}")
                # ping, content_block_start/stop and event types added later: nothing to relay
    if not finished:
        raise ProviderStreamError(f"{provider}: stream ended without message_stop")


def _describe(data: str) -> str:
    error = parse_object(AnthropicProvider.name, data).get("error")
    if isinstance(error, dict):
        return f"{error.get('type')}: {error.get('message')}"
    return data[:200]
