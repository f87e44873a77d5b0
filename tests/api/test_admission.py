"""Admission control: the loop-lag monitor, the capacity check, and a refused turn over HTTP."""

from __future__ import annotations

import asyncio
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
from tests.support.chat_stack import ChatStack, chat_settings, stream


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
