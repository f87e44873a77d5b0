"""The load generator against the real LLM stand-in over loopback HTTP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.local.llm.api import create_app
from app.local.postgres import free_port
from app.local.server import ServerThread
from bench.client import ANTHROPIC, Call, MarkerCounter, OpenStreams, closed_loop, stream_once
from bench.runner import ANTHROPIC_HEADERS
from bench.world import direct_body, message


@given(st.binary(max_size=300), st.lists(st.integers(0, 300), max_size=12))
def test_marker_counter_counts_like_bytes_count_however_the_stream_is_split(
    noise: bytes, cuts: list[int]
) -> None:
    marker = b'{"type":"token"'
    data = noise + marker + noise[::-1] + marker + marker
    counter = MarkerCounter(marker)
    last = 0
    for cut in sorted({min(c, len(data)) for c in cuts}):
        counter.feed(data[last:cut])
        last = cut
    counter.feed(data[last:])

    assert counter.count == data.count(marker)


@pytest.fixture(scope="module")
def standin() -> Iterator[str]:
    server = ServerThread(create_app(), free_port()).start()
    yield server.url
    server.stop()


def call(url: str, text: str, stop_after: int | None = None) -> Call:
    return Call(f"{url}/v1/messages", ANTHROPIC_HEADERS, direct_body(text, "u1"), stop_after)


@pytest.mark.anyio
async def test_stream_once_counts_every_token_and_sees_the_end(standin: str) -> None:
    async with aiohttp.ClientSession() as session:
        sample = await stream_once(
            session, call(standin, message("hi", tokens=37)), ANTHROPIC, timeout=10
        )

    assert (sample.outcome, sample.status, sample.tokens) == ("done", 200, 37)
    assert sample.ttft is not None and sample.total is not None
    assert 0 < sample.ttft <= sample.total


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("knobs", "outcome"),
    [
        ({"fault": "error", "after": 3}, "error_event"),
        ({"fault": "529"}, "http_529"),
        ({"fault": "truncate", "after": 2}, "incomplete"),
    ],
)
async def test_stream_once_tells_failures_from_complete_streams(
    standin: str, knobs: dict[str, object], outcome: str
) -> None:
    async with aiohttp.ClientSession() as session:
        sample = await stream_once(
            session, call(standin, message("hi", **knobs)), ANTHROPIC, timeout=10
        )

    assert sample.outcome == outcome
    assert not sample.ok


@pytest.mark.anyio
async def test_stream_once_leaving_early_disconnects_upstream(standin: str) -> None:
    since = time.monotonic()
    text = message("leave", tokens=100, delay_ms=20)
    async with aiohttp.ClientSession() as session:
        sample = await stream_once(
            session, call(standin, text, stop_after=5), ANTHROPIC, timeout=10
        )
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            async with session.get(f"{standin}/_ledger", params={"since": since}) as response:
                (entry,) = await response.json()
            if entry["closed_at"] is not None:
                break
            await asyncio.sleep(0.02)

    assert (sample.outcome, sample.tokens) == ("left", 5)
    assert entry["outcome"] == "client_disconnected"
    assert 5 <= entry["output_tokens"] < 100


@pytest.mark.anyio
async def test_closed_loop_runs_each_worker_back_to_back_and_tracks_open_streams(
    standin: str,
) -> None:
    gauge = OpenStreams()
    text = message("loop", tokens=5, delay_ms=10)
    async with aiohttp.ClientSession() as session:
        result = await closed_loop(
            session,
            lambda _w, _k: call(standin, text),
            ANTHROPIC,
            concurrency=4,
            seconds=0,
            min_requests=12,
            gauge=gauge,
        )

    assert len(result.samples) == 12
    assert all(s.ok and s.tokens == 5 for s in result.samples)
    assert gauge.peak == 4 and gauge.now == 0
    assert result.client_cpu_s > 0


@pytest.mark.anyio
@pytest.mark.parametrize(("refusals_count", "streams"), [(True, 3), (False, 6)])
async def test_closed_loop_retries_refused_requests_after_their_retry_after(
    refusals_count: bool, streams: int
) -> None:
    """A hold wants N streams: without `refusals_count` a refused request is tried again."""
    from aiohttp import web  # noqa: PLC0415 - only this test serves with aiohttp

    refused = 0

    async def handler(_request: web.Request) -> web.Response:
        nonlocal refused
        if refused < 3:
            refused += 1
            return web.Response(status=503, headers={"Retry-After": "0.01"})
        return web.Response(body=b'"text_delta"\nevent: message_stop\n')

    app = web.Application()
    app.router.add_post("/", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with aiohttp.ClientSession() as session:
            result = await closed_loop(
                session,
                lambda _w, _k: Call(f"http://127.0.0.1:{port}/", {}, b"{}"),
                ANTHROPIC,
                concurrency=1,
                seconds=0,
                min_requests=6,
                honour_retry_after=True,
                refusals_count=refusals_count,
            )
    finally:
        await runner.cleanup()
    outcomes = [s.outcome for s in result.samples]
    assert outcomes[:3] == ["http_503"] * 3
    assert outcomes.count("done") == streams
