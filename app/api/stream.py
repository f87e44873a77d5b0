"""The SSE response: relay what the use case emits, ping when quiet, notice a disconnect at once.

A small ASGI response rather than sse-starlette: it needs no per-token lock (sse-starlette #77)
and it must cancel the producer the moment the client leaves, so the upstream stops billing.

The producer's events go to a writer task, which sends everything waiting as one body message;
a timer (not a task) adds the ping when nothing was written for a while.
Nothing waits for company: an event is written in the same turn of the event loop as it was
emitted. But when several are ready at once (an upstream read that carried many tokens, or a
loaded server catching up), they leave in one socket write instead of one write each: the write
and the ASGI send path are most of the relay's CPU per token. A bounded backlog keeps the
producer from reading upstream faster than the client reads.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from app.api.sse import PING, SSE_HEADERS, ClientGone, Producer

logger = logging.getLogger(__name__)

MAX_BACKLOG_BYTES = 64 * 1024  # emitted but not yet written: past this the producer waits


class EventStreamResponse(Response):
    """Run `producer(emit)` while relaying what it emits; cancel it when the client leaves."""

    def __init__(
        self,
        producer: Producer,
        *,
        heartbeat_seconds: float,
        headers: Mapping[str, str] | None = None,
        on_disconnect: Callable[[], None] | None = None,
    ) -> None:
        """`on_disconnect`: called when the client leaves, instead of cancelling the producer
        (which then sees `ClientGone` from `emit` and may go on: a resumable turn's grace)."""
        super().__init__(status_code=200, media_type="text/event-stream")
        self.producer = producer
        self.on_disconnect = on_disconnect
        self.heartbeat_seconds = heartbeat_seconds
        self.stream_headers = dict(SSE_HEADERS) | {k.lower(): v for k, v in (headers or {}).items()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # noqa: ARG002
        loop = asyncio.get_running_loop()
        gone = False
        done = False  # the producer has finished: the writer flushes and stops
        last_write = loop.time()
        backlog: list[bytes] = []
        backlog_bytes = 0
        ready = asyncio.Event()  # there is something to write (or the producer finished)
        room = asyncio.Event()  # the backlog is under its bound
        room.set()

        async def emit(chunk: bytes) -> None:
            nonlocal backlog_bytes
            if gone:
                raise ClientGone
            backlog.append(chunk)
            backlog_bytes += len(chunk)
            ready.set()
            if backlog_bytes > MAX_BACKLOG_BYTES:
                room.clear()
                await room.wait()
                if gone:
                    raise ClientGone

        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(k.encode(), v.encode()) for k, v in self.stream_headers.items()],
            }
        )
        producer = asyncio.ensure_future(self.producer(emit))

        def client_left() -> None:
            nonlocal gone
            if gone:
                return
            gone = True
            room.set()  # a producer waiting for room learns the client is gone
            if self.on_disconnect is None:
                producer.cancel()
            else:
                self.on_disconnect()

        async def write() -> None:
            nonlocal backlog_bytes, last_write
            while True:
                await ready.wait()
                ready.clear()
                while backlog:
                    body = backlog[0] if len(backlog) == 1 else b"".join(backlog)
                    backlog.clear()
                    backlog_bytes = 0
                    room.set()
                    try:
                        await send({"type": "http.response.body", "body": body, "more_body": True})
                    except OSError:  # uvicorn's ClientDisconnected is an OSError
                        client_left()
                        return
                    last_write = loop.time()
                if done:
                    return

        async def watch_disconnect() -> None:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    client_left()
                    return

        beat: asyncio.TimerHandle | None = None

        def heartbeat() -> None:
            """A ping when nothing was written for `heartbeat_seconds` (a timer, not a task: a
            worker holds a thousand streams)."""
            nonlocal beat, last_write
            now = loop.time()
            if now - last_write >= self.heartbeat_seconds and not gone and not backlog:
                backlog.append(PING)
                ready.set()
                last_write = now
            if not gone and not done:
                due = max(now + 0.05, last_write + self.heartbeat_seconds)
                beat = loop.call_at(due, heartbeat)

        writer = asyncio.ensure_future(write())
        helpers = [asyncio.ensure_future(watch_disconnect())]
        beat = loop.call_at(last_write + self.heartbeat_seconds, heartbeat)
        try:
            try:
                await producer
            except asyncio.CancelledError:
                if not gone:  # we were cancelled from outside (shutdown), not by the client
                    raise
            except ClientGone:
                pass
            done = True
            ready.set()
            await writer  # everything emitted is written before the body ends
        finally:
            beat.cancel()
            for task in [writer, *helpers]:
                task.cancel()
            await asyncio.gather(writer, *helpers, return_exceptions=True)
        if not gone:
            try:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            except OSError:
                logger.debug("client left before the end of the stream")
