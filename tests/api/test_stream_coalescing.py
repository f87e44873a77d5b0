"""The SSE response writes events as soon as the loop turns, together when several are ready."""

from __future__ import annotations

import asyncio

import anyio
import pytest
from starlette.types import Message

from app.api.sse import Emit
from app.api.stream import MAX_BACKLOG_BYTES, EventStreamResponse


async def never_disconnects() -> Message:
    await asyncio.sleep(3600)
    return {"type": "http.disconnect"}


def bodies(sent: list[Message]) -> list[bytes]:
    return [m["body"] for m in sent if m["type"] == "http.response.body"]


@pytest.mark.anyio
async def test_stream_events_ready_together_leave_in_one_write_in_order() -> None:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def producer(emit: Emit) -> None:
        for i in range(5):  # one upstream read's worth: emitted without the loop turning
            await emit(b"data: %d\n\n" % i)
        await asyncio.sleep(0.01)
        await emit(b"data: 5\n\n")

    with anyio.fail_after(5):
        await EventStreamResponse(producer, heartbeat_seconds=60)({}, never_disconnects, send)

    assert bodies(sent) == [b"".join(b"data: %d\n\n" % i for i in range(5)), b"data: 5\n\n", b""]
    assert sent[-1]["more_body"] is False


@pytest.mark.anyio
async def test_stream_producer_waits_while_the_client_is_not_reading() -> None:
    sent: list[Message] = []
    reading = asyncio.Event()
    emitted = 0

    async def send(message: Message) -> None:
        if message["type"] == "http.response.body":
            await reading.wait()  # the socket is full: uvicorn's send waits
        sent.append(message)

    async def producer(emit: Emit) -> None:
        nonlocal emitted
        for _ in range(100):
            await emit(b"x" * 4096)
            emitted += 1

    response = asyncio.ensure_future(
        EventStreamResponse(producer, heartbeat_seconds=60)({}, never_disconnects, send)
    )
    await asyncio.sleep(0.1)
    held = emitted
    reading.set()
    with anyio.fail_after(5):
        await response

    assert held * 4096 <= 2 * MAX_BACKLOG_BYTES + 4096
    assert b"".join(bodies(sent)) == b"x" * 4096 * 100


@pytest.mark.anyio
async def test_stream_failed_write_cancels_the_producer() -> None:
    cancelled = asyncio.Event()

    async def send(message: Message) -> None:
        if message["type"] == "http.response.body":
            raise OSError("client went away")

    async def producer(emit: Emit) -> None:
        try:
            while True:
                await emit(b"data: x\n\n")
                await asyncio.sleep(0.01)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with anyio.fail_after(5):
        await EventStreamResponse(producer, heartbeat_seconds=60)({}, never_disconnects, send)

    assert cancelled.is_set()


@pytest.mark.anyio
async def test_stream_pings_only_when_quiet_and_never_after_the_end() -> None:
    """The heartbeat is a timer: a ping only after `heartbeat_seconds` with nothing written, and
    nothing sent once the body has ended (the timer is cancelled with the stream)."""
    loop = asyncio.get_running_loop()
    sent: list[tuple[float, bytes]] = []

    async def send(message: Message) -> None:
        if message["type"] == "http.response.body":
            sent.append((loop.time(), message["body"]))

    async def producer(emit: Emit) -> None:
        for _ in range(10):  # busy: an event every 10 ms, well under the 100 ms heartbeat
            await emit(b"data: busy\n\n")
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.45)  # quiet: four heartbeats' worth
        await emit(b"data: last\n\n")

    with anyio.fail_after(5):
        await EventStreamResponse(producer, heartbeat_seconds=0.1)({}, never_disconnects, send)
    ended = len(sent)
    await asyncio.sleep(0.3)

    assert len(sent) == ended  # no ping after the end
    assert [body for _, body in sent[-2:]] == [b"data: last\n\n", b""]
    pings = [i for i, (_, body) in enumerate(sent) if body.startswith(b":")]
    assert pings  # the quiet stretch was pinged
    for i in pings:  # each ping came after a quiet heartbeat interval, never between events
        assert sent[i][0] - sent[i - 1][0] >= 0.1 - 0.01
