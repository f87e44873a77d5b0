"""Admission control: the loop-lag monitor, the capacity check, and a refused turn over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI

from app.api.admission import Admission, LagMonitor
from app.api.deps import Services
from app.errors import Overloaded
from app.local.context import StackContext
from app.local.postgres import free_port
from app.local.server import ServerThread
from app.local.stack import LocalStack, build_app
from app.main import create_app
from app.user_messages import user_message
from tests.support.chat_stack import ChatStack, chat_settings, start_chat_stack, stream


@pytest.mark.anyio
async def test_lag_monitor_loop_blocked_on_purpose_reads_the_lateness() -> None:
    monitor = LagMonitor(tick=0.05, smoothing=1.0)  # the reading is the latest tick's lateness
    monitor.start()
    try:
        await asyncio.sleep(0.12)  # a couple of ticks on an idle loop
        before = monitor.lag_seconds()
        time.sleep(0.5)  # noqa: ASYNC251 - block the loop on purpose: the tick fires >= 0.45 s late
        while monitor.lag_seconds() == before:  # noqa: ASYNC110 - until the next tick is read
            await asyncio.sleep(0)
        assert monitor.lag_seconds() >= 0.4
    finally:
        await monitor.stop()


def test_lag_monitor_observe_is_a_moving_average_that_ignores_early_ticks() -> None:
    monitor = LagMonitor(smoothing=0.5)
    monitor.observe(0.4)
    assert monitor.lag_seconds() == pytest.approx(0.2)
    monitor.observe(-1.0)  # a tick cannot be early; counts as on time
    assert monitor.lag_seconds() == pytest.approx(0.1)


def test_admission_check_lag_over_the_bound_raises_overloaded_with_retry_after() -> None:
    admission = Admission(lag=lambda: 0.3, max_lag_seconds=0.25, max_streams=0, retry_after=2)
    with pytest.raises(Overloaded) as refused:
        admission.check()
    assert (refused.value.status, refused.value.retry_after) == (503, 2)


def test_admission_check_streams_at_the_cap_raise_and_below_pass() -> None:
    admission = Admission(lag=lambda: 0.0, max_lag_seconds=0.25, max_streams=2)
    admission.open_streams = 1
    admission.check()
    admission.starting = 1  # admitted a moment ago, not streaming yet: counts against the cap
    with pytest.raises(Overloaded):
        admission.check()


def test_admission_check_zero_bounds_never_refuse() -> None:
    admission = Admission(lag=lambda: 60.0, max_lag_seconds=0, max_streams=0)
    admission.open_streams = 10_000
    admission.check()


@dataclass
class Served:
    stack: ChatStack
    services: Services


@pytest.fixture(scope="module")
def served(local_stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    port = free_port()
    ctx = StackContext(
        keys=local_stack.keys, api_url=f"http://127.0.0.1:{port}", db_port=local_stack.db_port
    )
    settings = chat_settings(ctx, tmp_path_factory.mktemp("outbox"), max_streams_per_worker=0)
    functions: FastAPI = create_app(settings)
    server = ServerThread(build_app(ctx, functions_app=functions), port).start()
    stack = ChatStack(ctx.api_url, ctx, settings, local_stack.pg.superuser_dsn, server)
    try:
        yield Served(stack, functions.state.services)
    finally:
        server.stop()


@pytest.mark.slow
def test_chat_stream_overloaded_worker_refuses_with_503_retry_after_before_any_work(
    served: Served,
) -> None:
    stack, admission = served.stack, served.services.admission
    user = stack.new_user()
    conversation = user.conversation()
    since = time.monotonic()
    real_lag = admission.lag
    admission.lag = lambda: 5.0  # the monitor's reading: five seconds late
    try:
        refused = httpx.post(
            stack.endpoint,
            json={"message": "hello [[standin tokens=3]]", "conversationId": conversation},
            headers=user.headers(),
            timeout=10,
        )
    finally:
        admission.lag = real_lag

    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert refused.json() == {
        "error": "This server is busy",
        "userMessage": user_message("overloaded"),
        "code": "overloaded",
    }
    # Refused before chat_begin (no message stored) and before the upstream was called.
    assert (
        stack.rows("select 1 from public.messages where conversation_id = %s", conversation) == []
    )
    assert stack.ledger(since) == []
    # With the worker back under its capacity, the same turn is served.
    served_again = stream(
        stack, user, {"message": "hello [[standin tokens=3]]", "conversationId": conversation}
    )
    assert served_again.status == 200
    assert len(served_again.tokens) == 3


@contextlib.contextmanager
def stalled_bodies(stack: ChatStack, n: int) -> Iterator[list[socket.socket]]:
    """`n` connections that send a chat request's headers and 3 bytes of a 1,000-byte body, no
    token, and then nothing."""
    url = httpx.URL(stack.url)
    socks = []
    try:
        for _ in range(n):
            sock = socket.create_connection((url.host, url.port or 80), timeout=30)
            sock.sendall(
                b"POST /functions/v1/chat-stream HTTP/1.1\r\nHost: " + url.netloc + b"\r\n"
                b'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"m'
            )
            socks.append(sock)
        time.sleep(0.3)  # let the service take them in
        yield socks
    finally:
        for sock in socks:
            sock.close()


@pytest.fixture(scope="module")
def four_streams(
    local_stack: LocalStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ChatStack]:
    stack = start_chat_stack(
        local_stack,
        tmp_path_factory.mktemp("outbox-four"),
        max_streams_per_worker=4,
        max_pending_requests_per_client=6,
        body_timeout_seconds=2.0,
        admission_max_lag_ms=0,
    )
    yield stack
    assert stack.server is not None
    stack.server.stop()


@pytest.mark.slow
def test_unauthenticated_bodies_in_flight_take_no_turn_slot(four_streams: ChatStack) -> None:
    stack = four_streams
    user = stack.new_user()
    conv = user.conversation()

    with stalled_bodies(stack, 4):
        served = stream(stack, user, {"message": "me [[standin tokens=3]]", "conversationId": conv})

    assert served.status == 200, served.body
    assert len(served.tokens) == 3


@pytest.mark.slow
def test_pending_requests_are_bounded_per_client_and_cut_at_the_body_timeout(
    four_streams: ChatStack,
) -> None:
    stack = four_streams
    user = stack.new_user()
    conv = user.conversation()
    body = {"message": "me [[standin tokens=1]]", "conversationId": conv}

    with stalled_bodies(stack, 6) as socks:
        refused = stream(stack, user, body)  # the seventh pending request from this address
        cut = [sock.recv(4096).split(b" ", 2)[1] for sock in socks]  # after BODY_TIMEOUT_SECONDS
        after = stream(stack, user, body)

    assert refused.status == 429 and refused.body["code"] == "rate_limited", refused.body
    assert cut == [b"408"] * 6
    assert after.status == 200 and after.last["type"] == "done"
