"""httpx's API over aiohttp's connection handling (httpx-aiohttp), with honest exception types.

httpx-aiohttp maps every `aiohttp.ClientConnectionError` — a refused connection, a server that
hangs up before answering — to `httpx.ConnectTimeout`. We keep the timeout only when the cause is
one, so "refused" stays "unavailable" and is not reported as a timeout. A server that closed a
pooled keep-alive connection is `httpx.RemoteProtocolError`, as httpx's own transport says, so a
caller that retries idempotent requests on a stale connection (the store) recognises it. Bodies
over 1 MB go to aiohttp as a stream, which it asks for instead of a large bytes object.
"""

from __future__ import annotations

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

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
            return await super().handle_async_request(_large_bodies_streamed(request))
        except httpx.ConnectTimeout as exc:
            cause = exc.__cause__
            if cause is None or isinstance(cause, TimeoutError):
                raise
            if isinstance(cause, aiohttp.ServerDisconnectedError):
                raise httpx.RemoteProtocolError(str(cause), request=request) from cause
            raise httpx.ConnectError(str(exc) or repr(cause), request=request) from cause
