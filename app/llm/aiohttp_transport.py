"""httpx's API over aiohttp's connection handling (httpx-aiohttp), with honest exception types.

httpx-aiohttp maps every `aiohttp.ClientConnectionError` — a refused connection, a server that
hangs up before answering — to `httpx.ConnectTimeout`. We keep the timeout only when the cause is
one, so "refused" stays "unavailable" and is not reported as a timeout.
"""

from __future__ import annotations

import httpx
from httpx_aiohttp import AiohttpTransport


class HonestAiohttpTransport(AiohttpTransport):
    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await super().handle_async_request(request)
        except httpx.ConnectTimeout as exc:
            cause = exc.__cause__
            if cause is None or isinstance(cause, TimeoutError):
                raise
            raise httpx.ConnectError(str(exc) or repr(cause), request=request) from cause
