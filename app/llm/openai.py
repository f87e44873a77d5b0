"""OpenAI Chat Completions adapter: `POST {base}/chat/completions` with `stream: true`.

Also serves OpenAI-compatible servers (vLLM, llama.cpp, Ollama, gateways) by base URL. We ask for
`stream_options.include_usage`, so the last chunk before `data: [DONE]` has empty `choices` and the
usage (and, from OpenRouter, the cost: `app/llm/reported_cost.py`). Its `prompt_tokens`
INCLUDES `prompt_tokens_details.cached_tokens`; we subtract them so `Usage.input_tokens` is the
uncached part and every token is priced once.
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import httpx
from httpx_sse import EventSource

from app.core.domain import CompletionRequest, ProviderEvent, TextDelta, Usage, UsageReport
from app.errors import ProviderStreamError
from app.llm.caching import PromptCache, cache_key
from app.llm.http import Events, parse_object, stream_events, translate_errors
from app.llm.reported_cost import reported_cost
from app.llm.sse_read import read_events

COMPLETIONS_PATH = "chat/completions"  # relative to the base URL (…/v1), as the official SDK does
# Reasoning models accept only the default temperature and reject `max_tokens`.
_REASONING_MODEL = re.compile(r"^(o\d|gpt-5)")


class OpenAIProvider:
    """Streams one answer per request over a shared connection pool (the factory's client).

    `name="openai"` speaks today's OpenAI dialect (`max_completion_tokens`, `safety_identifier`);
    `name="openai-compatible"` the older one most compatible servers accept (`max_tokens`, `user`).
    """

    def __init__(
        self, client: httpx.AsyncClient, *, name: str = "openai", cache: PromptCache = "off"
    ) -> None:
        self._client = client
        self.name = name
        self.cache = cache

    def stream(
        self, request: CompletionRequest
    ) -> contextlib.AbstractAsyncContextManager[AsyncIterator[ProviderEvent]]:
        body = payload(request, official=self.name == "openai", cache=self.cache)
        parse = functools.partial(_events, provider=self.name)
        return stream_events(self._client, self.name, COMPLETIONS_PATH, body, parse)

    async def aclose(self) -> None:
        await self._client.aclose()


def payload(
    request: CompletionRequest, *, official: bool = True, cache: PromptCache = "off"
) -> dict[str, Any]:
    """The Chat Completions request; with caching on (and a conversation), OpenAI's own dialect
    carries `prompt_cache_key`, a hash of the conversation id (compatible servers may refuse
    unknown fields, so they get none)."""
    messages = [{"role": "system", "content": request.system}] if request.system else []
    messages += [{"role": m.role, "content": m.content} for m in request.messages]
    body: dict[str, Any] = {
        "model": request.model,
        "messages": messages,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if official:
        body["max_completion_tokens"] = request.max_tokens
    else:
        body["max_tokens"] = request.max_tokens
    if not (official and _REASONING_MODEL.match(request.model)):
        body["temperature"] = request.temperature
    if request.user_id:
        body["safety_identifier" if official else "user"] = request.user_id
    if official and cache != "off" and request.conversation_id:
        body["prompt_cache_key"] = cache_key(request.conversation_id)
    return body


def usage_from(raw: Mapping[str, Any]) -> Usage:
    """OpenAI usage → our partitions: cached (and, where reported, cache-write) tokens moved out
    of `prompt_tokens`, so no token is priced twice."""

    def count(mapping: object, key: str) -> int:
        value = mapping.get(key) if isinstance(mapping, Mapping) else None
        return int(value) if isinstance(value, int | float) else 0

    details = raw.get("prompt_tokens_details")
    prompt = count(raw, "prompt_tokens")
    cached = count(details, "cached_tokens")
    written = count(details, "cache_write_tokens")
    return Usage(
        input_tokens=max(0, prompt - cached - written),
        output_tokens=count(raw, "completion_tokens"),
        cache_read_tokens=cached,
        cache_write_tokens=written,
    )


async def _events(
    source: EventSource, first_token: Callable[[], None] | None, provider: str
) -> Events:
    finished = False
    with translate_errors(provider, streaming=True):
        async with contextlib.aclosing(read_events(source.response)) as sse_events:
            async for _, data in sse_events:
                if finished:  # read on to the end of the body: the connection goes back to the pool
                    continue
                if data == "[DONE]":
                    finished = True
                    continue
                chunk = parse_object(provider, data)
                if error := chunk.get("error"):
                    raise ProviderStreamError(f"{provider}: error event: {_describe(error)}")
                for choice in chunk.get("choices") or ():
                    delta = choice.get("delta") if isinstance(choice, dict) else None
                    if isinstance(delta, dict) and (text := delta.get("content")):
                        if first_token is not None:
                            first_token()
                            first_token = None
                        yield TextDelta(text)
                usage = chunk.get("usage")
                if isinstance(usage, dict):
                    yield UsageReport(usage_from(usage), chunk.get("model"), reported_cost(usage))
    if not finished:
        raise ProviderStreamError(f"{provider}: stream ended without data: [DONE]")


def _describe(error: object) -> str:
    if isinstance(error, dict):
        return f"{error.get('type') or error.get('code')}: {error.get('message')}"
    return str(error)[:200]
