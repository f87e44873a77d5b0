"""The HTTP plumbing both provider adapters share: the pooled client, opening an SSE stream, and
the one place where httpx / httpx-sse exceptions become `app.errors` provider errors.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Mapping
from typing import Any, Literal

import httpx
import orjson
from httpx_sse import EventSource, SSEError, aconnect_sse

from app.core.domain import ProviderEvent
from app.errors import ProviderError, ProviderStreamError, ProviderTimeout, ProviderUnavailable
from app.ops import tracing

Transport = Literal["httpx", "aiohttp"]
Events = AsyncGenerator[ProviderEvent, None]
# An adapter's reading of the event stream; it calls the callback with its first text delta.
Parse = Callable[[EventSource, Callable[[], None]], Events]

# Statuses where trying again (or another provider) cannot help: the request itself is wrong.
NOT_RETRYABLE = frozenset({400, 401, 403, 404, 413, 422})
ERROR_BODY_LIMIT = 64 * 1024
MAX_CONNECTIONS = 1000  # concurrent streams per provider; each stream holds one connection


def build_client(
    base_url: str,
    headers: Mapping[str, str],
    *,
    connect_timeout: float,
    idle_timeout: float,
    pool_timeout: float,
    transport: Transport = "httpx",
    max_connections: int = MAX_CONNECTIONS,
    keepalive_seconds: float = 4.0,
) -> httpx.AsyncClient:
    """One long-lived client per provider: a connection pool sized for hundreds of streams.

    The read timeout bounds each wait for bytes (the idle timeout); the use case also enforces
    the availability and total deadlines, so nothing here waits forever.
    """
    limits = httpx.Limits(
        max_connections=max_connections,
        max_keepalive_connections=min(200, max_connections),
        keepalive_expiry=keepalive_seconds,
    )
    timeout = httpx.Timeout(
        connect=connect_timeout, read=idle_timeout, write=connect_timeout, pool=pool_timeout
    )
    kwargs: dict[str, Any] = {}
    if transport == "aiohttp":
        from app.llm.aiohttp_transport import HonestAiohttpTransport  # noqa: PLC0415 - optional

        kwargs["transport"] = HonestAiohttpTransport(limits=limits)
    return httpx.AsyncClient(
        base_url=base_url,
        headers=dict(headers),
        limits=limits,
        timeout=timeout,
        event_hooks={"request": [tracing.inject_headers]},  # the caller's traceparent, passed on
        **kwargs,
    )


@contextlib.contextmanager
def translate_errors(provider: str, *, streaming: bool) -> Iterator[None]:
    """httpx / httpx-sse failures → ProviderError subclasses, `raise … from exc`.

    Before the head (`streaming=False`) a failure means the provider is unavailable (fallback may
    help); once streaming, a broken connection is a `ProviderStreamError`.
    """
    try:
        yield
    except httpx.TimeoutException as exc:
        phase = "idle between events" if streaming else "before the response head"
        raise ProviderTimeout(f"{provider}: timed out {phase}: {exc!r}") from exc
    except (httpx.TransportError, SSEError) as exc:
        if streaming:
            raise ProviderStreamError(f"{provider}: stream broke: {exc!r}") from exc
        raise ProviderUnavailable(f"{provider}: request failed: {exc!r}") from exc
    except httpx.HTTPError as exc:  # e.g. DecodingError: a body that does not decode
        error = ProviderStreamError if streaming else ProviderUnavailable
        raise error(f"{provider}: {exc!r}") from exc


def parse_object(provider: str, data: str) -> dict[str, Any]:
    """An event's JSON object; a malformed event is a stream error, not a crash."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ProviderStreamError(f"{provider}: malformed event: {data[:200]!r}") from exc
    if not isinstance(value, dict):
        raise ProviderStreamError(f"{provider}: event is not a JSON object: {data[:200]!r}")
    return value


async def _refusal(provider: str, response: httpx.Response) -> ProviderError:
    """The error for a non-200 head, with the upstream's error type in the detail."""
    raw = b""
    async for chunk in response.aiter_bytes():
        raw += chunk
        if len(raw) >= ERROR_BODY_LIMIT:
            break
    kind, message = "unknown_error", raw[:300].decode(errors="replace")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        kind = str(error.get("type") or error.get("code") or kind)
        message = str(error.get("message") or "")
    detail = f"{provider}: HTTP {response.status_code} {kind}: {message}"
    if retry_after := response.headers.get("retry-after"):
        detail += f" (retry-after {retry_after})"
    exc = ProviderUnavailable(detail, kind=kind)
    exc.retryable = response.status_code not in NOT_RETRYABLE
    return exc


@contextlib.asynccontextmanager
async def stream_events(
    client: httpx.AsyncClient,
    provider: str,
    path: str,
    payload: dict[str, Any],
    parse: Parse,
) -> AsyncIterator[Events]:
    """The adapters' `Provider.stream`: open the stream, hand out `parse(source, first_token)`'s
    events, and close both (events first, then the upstream response) when the caller leaves.
    `parse` calls `first_token()` once, with its first text delta: the span's `first_token`
    event (a callback, not one more generator every event passes through)."""
    with tracing.span("llm.stream", **{"gen_ai.system": provider}) as span:

        def first_token() -> None:
            if span is not tracing.NO_SPAN:
                span.add_event("first_token")

        async with open_event_stream(client, provider, path, payload) as source:
            events = parse(source, first_token)
            try:
                yield events
            finally:
                await events.aclose()


@contextlib.asynccontextmanager
async def open_event_stream(
    client: httpx.AsyncClient, provider: str, path: str, payload: dict[str, Any]
) -> AsyncIterator[EventSource]:
    """POST `payload` and return once a 200 `text/event-stream` head has arrived.

    Raises `ProviderUnavailable` / `ProviderTimeout` otherwise. Leaving the context closes the
    response, and with it the upstream connection (a half-read response is never reused).
    """
    content = orjson.dumps(payload)
    headers = {"content-type": "application/json"}
    async with contextlib.AsyncExitStack() as stack:
        with translate_errors(provider, streaming=False):
            source = await stack.enter_async_context(
                aconnect_sse(client, "POST", path, content=content, headers=headers)
            )
            response = source.response
            if response.status_code != 200:
                raise await _refusal(provider, response)
        content_type = response.headers.get("content-type", "")
        if "text/event-stream" not in content_type:
            raise ProviderUnavailable(f"{provider}: expected an event stream, got {content_type!r}")
        yield source
