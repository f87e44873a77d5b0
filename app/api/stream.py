"""The SSE response: relay what the use case emits, ping when quiet, notice a disconnect at once.

A small ASGI response rather than sse-starlette: it needs no per-token lock (sse-starlette #77)
and it must cancel the producer the moment the client leaves, so the upstream stops billing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from app.sse import PING, SSE_HEADERS, ClientGone, Producer

logger = logging.getLogger(__name__)


class EventStreamResponse(Response):
    """Run `producer(emit)` while relaying what it emits; cancel it when the client leaves."""

    def __init__(
        self,
        producer: Producer,
        *,
        heartbeat_seconds: float,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(status_code=200, media_type="text/event-stream")
        self.producer = producer
        self.heartbeat_seconds = heartbeat_seconds
        self.stream_headers = dict(SSE_HEADERS) | {k.lower(): v for k, v in (headers or {}).items()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # noqa: ARG002
        gone = False
        last_write = asyncio.get_running_loop().time()

        async def emit(chunk: bytes) -> None:
            nonlocal last_write, gone
            if gone:
                raise ClientGone
            try:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except OSError as exc:  # uvicorn's ClientDisconnected is an OSError
                gone = True
                raise ClientGone from exc
            last_write = asyncio.get_running_loop().time()

        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(k.encode(), v.encode()) for k, v in self.stream_headers.items()],
            }
        )
        loop = asyncio.get_running_loop()
        producer = asyncio.ensure_future(self.producer(emit))

        async def watch_disconnect() -> None:
            nonlocal gone
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    gone = True
                    producer.cancel()
                    return

        async def heartbeat() -> None:
            while True:
                await asyncio.sleep(max(0.05, last_write + self.heartbeat_seconds - loop.time()))
                if loop.time() - last_write >= self.heartbeat_seconds and not gone:
                    try:
                        await emit(PING)
                    except ClientGone:
                        producer.cancel()
                        return

        helpers = [asyncio.ensure_future(watch_disconnect()), asyncio.ensure_future(heartbeat())]
        try:
            await producer
        except asyncio.CancelledError:
            if not gone:  # we were cancelled from outside (shutdown), not by the client
                raise
        except ClientGone:
            pass
        finally:
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
        if not gone:
            try:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            except OSError:
                logger.debug("client left before the end of the stream")
