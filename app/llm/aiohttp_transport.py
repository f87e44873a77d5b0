"""httpx's API over aiohttp's connection handling (httpx-aiohttp), with honest exception types.

httpx-aiohttp maps every `aiohttp.ClientConnectionError` — a refused connection, a server that
hangs up before answering — to `httpx.ConnectTimeout`. We keep the timeout only when the cause is
one, so "refused" stays "unavailable" and is not reported as a timeout. A server that closed a
pooled keep-alive connection is `httpx.RemoteProtocolError`, as httpx's own transport says, so a
caller that retries idempotent requests on a stale connection (the store) recognises it. Bodies
over 1 MB go to aiohttp as a stream, which it asks for instead of a large bytes object.

A streamed body can also be read straight from aiohttp (`body_chunks`): through httpx it passes
four more generators per chunk (httpx-aiohttp's stream, httpx's bound stream, `aiter_raw`,
`aiter_bytes`), and at one token per chunk that was a fifth of the relay's upstream read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport
from httpx_aiohttp.transport import map_aiohttp_exceptions

# The extension under which a response keeps aiohttp's reader of its (unencoded) body.
AIOHTTP_CONTENT = "chat_stream.aiohttp_content"

# aiohttp warns (ResourceWarning) when handed a bytes body over 1 MB; such bodies go as a stream.
LARGE_BODY_BYTES = 2**20


def _large_bodies_streamed(request: httpx.Request) -> httpx.Request:
    try:
        content = request.content
    except httpx.RequestNotRead:  # already a stream
        return request
    if len(content) <= LARGE_BODY_BYTES:
        return request
    return httpx.Request(
        request.method,
        request.url,
        headers=request.headers,
        stream=httpx.ByteStream(content),
        extensions=request.extensions,
    )


class HonestAiohttpTransport(AiohttpTransport):
    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = await super().handle_async_request(_large_bodies_streamed(request))
        except httpx.ConnectTimeout as exc:
            cause = exc.__cause__
            if cause is None or isinstance(cause, TimeoutError):
                raise
            if isinstance(cause, aiohttp.ServerDisconnectedError):
                raise httpx.RemoteProtocolError(str(cause), request=request) from cause
            raise httpx.ConnectError(str(exc) or repr(cause), request=request) from cause
        raw = getattr(response.stream, "_aiohttp_response", None)  # httpx-aiohttp's stream
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        if isinstance(raw, aiohttp.ClientResponse) and encoding == "identity":
            response.extensions[AIOHTTP_CONTENT] = raw.content
        return response


async def body_chunks(response: httpx.Response) -> AsyncIterator[bytes]:
    """The body's bytes as they arrive: from aiohttp's reader when this transport left it (an
    unencoded body), else httpx's `aiter_bytes`. aiohttp's errors become httpx's, as
    httpx-aiohttp maps them, so callers translate one family of exceptions."""
    content = response.extensions.get(AIOHTTP_CONTENT)
    if not isinstance(content, aiohttp.StreamReader):
        async for chunk in response.aiter_bytes():
            yield chunk
        return
    with map_aiohttp_exceptions():
        while chunk := await content.readany():
            yield chunk
