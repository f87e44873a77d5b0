"""The load generator: raw aiohttp streaming with minimal parsing, so it is never the bottleneck.

It does not parse SSE. It counts a marker that appears once per token event (kept correct across
chunk boundaries), notes when the first one arrives, and looks at the last bytes to tell a
complete stream from an error event. Run it on uvloop in its own process.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp

TAIL_BYTES = 512


@dataclass(frozen=True)
class Wire:
    """Byte markers of one SSE dialect: once per token, in a complete end, in an error event."""

    name: str
    token: bytes
    done: bytes
    error: bytes


# The Anthropic Messages stream (the stand-in, called directly) and our own contract
# (docs/design.md §4).
ANTHROPIC = Wire("direct", b'"text_delta"', b"event: message_stop", b"event: error")
SERVICE = Wire("service", b'{"type":"token"', b'{"type":"done"', b'{"type":"error"')


@dataclass(frozen=True)
class Call:
    url: str
    headers: dict[str, str]
    body: bytes
    stop_after_tokens: int | None = None  # leave after this many tokens (a disconnecting client)


@dataclass(slots=True)
class Sample:
    """One request as the client saw it. Times are seconds from sending the request."""

    started: float  # time.monotonic() when sent
    status: int = 0  # HTTP status, 0 when no response head arrived
    ttft: float | None = None
    total: float | None = None
    tokens: int = 0
    outcome: str = "pending"  # done | error_event | left | http_<status> | incomplete | <exc>
    retry_after: float | None = None  # the Retry-After of a refusal (seconds)
    tail: bytes = b""  # the last bytes of the body (the final event)

    @property
    def ok(self) -> bool:
        return self.outcome == "done"


class MarkerCounter:
    """Counts `marker` in a byte stream fed in arbitrary chunks, without double counting."""

    __slots__ = ("count", "marker", "_keep", "_tail")

    def __init__(self, marker: bytes) -> None:
        self.marker = marker
        self.count = 0
        self._keep = len(marker) - 1
        self._tail = b""

    def feed(self, chunk: bytes) -> int:
        """Add a chunk; returns how many new markers it completed."""
        data = self._tail + chunk if self._tail else chunk
        found = data.count(self.marker)
        self.count += found
        self._tail = data[-self._keep :] if self._keep else b""
        return found


@dataclass
class OpenStreams:
    """How many streams have a first token and no end yet (for memory per open stream)."""

    now: int = 0
    peak: int = 0

    def opened(self) -> None:
        self.now += 1
        self.peak = max(self.peak, self.now)

    def closed(self) -> None:
        self.now -= 1


def connector() -> aiohttp.TCPConnector:
    """Unlimited connections, kept alive: one per concurrent stream, reused between requests."""
    return aiohttp.TCPConnector(limit=0, limit_per_host=0, keepalive_timeout=30, ttl_dns_cache=None)


async def stream_once(
    session: aiohttp.ClientSession,
    call: Call,
    wire: Wire,
    *,
    timeout: float,  # noqa: ASYNC109 - one bound for the whole request
    gauge: OpenStreams | None = None,
) -> Sample:
    """Send one request and read its stream to the end (or until `stop_after_tokens`)."""
    sample = Sample(started=time.monotonic())
    t0 = time.perf_counter()
    counter = MarkerCounter(wire.token)
    tail = b""
    opened = False
    try:
        async with asyncio.timeout(timeout):
            async with session.post(call.url, data=call.body, headers=call.headers) as response:
                sample.status = response.status
                if response.status != 200:
                    sample.tail = (await response.read())[-TAIL_BYTES:]
                    sample.outcome = f"http_{response.status}"
                    with contextlib.suppress(TypeError, ValueError):
                        sample.retry_after = float(response.headers.get("retry-after", ""))
                    return sample
                async for chunk in response.content.iter_any():
                    if counter.feed(chunk) and not opened:
                        sample.ttft = time.perf_counter() - t0
                        opened = True
                        if gauge is not None:
                            gauge.opened()
                    tail = (tail + chunk)[-TAIL_BYTES:]
                    if (
                        call.stop_after_tokens is not None
                        and counter.count >= call.stop_after_tokens
                    ):
                        response.close()  # drop the connection: the service sees a disconnect
                        sample.outcome = "left"
                        break
                sample.total = time.perf_counter() - t0
    except TimeoutError:
        sample.outcome = "timeout"
    except aiohttp.ClientError as exc:
        sample.outcome = type(exc).__name__
    finally:
        if opened and gauge is not None:
            gauge.closed()
    sample.tokens = counter.count
    sample.tail = sample.tail or tail
    if sample.outcome == "pending":
        if wire.error in tail:
            sample.outcome = "error_event"
        elif wire.done in tail:
            sample.outcome = "done"
        else:
            sample.outcome = "incomplete"
    return sample


@dataclass
class LoopResult:
    samples: list[Sample] = field(default_factory=list)
    wall_s: float = 0.0
    client_cpu_s: float = 0.0


async def closed_loop(
    session: aiohttp.ClientSession,
    make_call: Callable[[int, int], Call],
    wire: Wire,
    *,
    concurrency: int,
    seconds: float,
    min_requests: int = 0,
    ramp_s: float = 0.0,
    timeout: float = 60.0,  # noqa: ASYNC109 - per request
    max_seconds: float = 300.0,
    gauge: OpenStreams | None = None,
    honour_retry_after: bool = False,
    refusals_count: bool = True,
) -> LoopResult:
    """`concurrency` workers, each sending requests back to back for `seconds` (and until at
    least `min_requests` were sent overall, within `max_seconds`). Worker starts are spread over
    `ramp_s` so the streams are staggered as in a steady state, not one thundering herd.
    `make_call(worker, k)` builds worker's k-th request. With `honour_retry_after`, a worker
    refused with a Retry-After waits that long before its next request, as a real client would;
    without `refusals_count`, such a refused request does not count towards `min_requests` (a
    hold wants that many streams, not that many attempts).
    """
    result = LoopResult()
    loop = asyncio.get_running_loop()
    start = loop.time()
    soft_end, hard_end = start + seconds, start + max_seconds
    sent = 0

    async def worker(index: int) -> None:
        nonlocal sent
        if ramp_s:
            await asyncio.sleep(ramp_s * index / concurrency)
        k = 0
        while True:
            now = loop.time()
            if now >= hard_end or (now >= soft_end and sent >= min_requests):
                return
            sent += 1
            call = make_call(index, k)
            k += 1
            sample = await stream_once(session, call, wire, timeout=timeout, gauge=gauge)
            result.samples.append(sample)
            if honour_retry_after and sample.retry_after:
                if not refusals_count:
                    sent -= 1
                await asyncio.sleep(sample.retry_after)

    cpu0, t0 = time.process_time(), time.perf_counter()
    tasks = [asyncio.ensure_future(worker(i)) for i in range(concurrency)]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)
    result.wall_s = time.perf_counter() - t0
    result.client_cpu_s = time.process_time() - cpu0
    return result
