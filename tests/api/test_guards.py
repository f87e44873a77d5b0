"""Budgets and rate limits hold under concurrency and across workers: they live in PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import IO

import httpx
import pytest

from app.chat.accounting import estimate_tokens
from app.core.pricing import Pricer
from app.local.postgres import free_port
from app.local.stack import LocalStack
from app.user_messages import user_message
from tests.support.chat_stack import ChatStack, User, start_chat_stack, stream

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SLOW_ANSWER = "[[standin tokens=8 delay_ms=250]]"


@pytest.fixture(scope="module")
def guarded(
    local_stack: LocalStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ChatStack]:
    """Guards on (a huge default daily cap); each test sets its own per-user caps."""
    stack = start_chat_stack(
        local_stack,
        tmp_path_factory.mktemp("outbox"),
        daily_budget_usd=Decimal("1000"),
        reservation_ttl_seconds=30,
        # 50 racing begins queue on one user's lock; on a loaded machine that can take seconds.
        # The races test the guards, not the database timeout, so give the queue room.
        db_timeout_seconds=30.0,
        # Fifty requests from 127.0.0.1 at once: neither the per-client bound on unverified
        # requests (429 `rate_limited`, which would pass for a guard's refusal) nor admission's
        # event-loop lag bound (503 on a busy box) may answer before the guard under test.
        max_pending_requests_per_client=0,
        admission_max_lag_ms=0,
    )
    yield stack
    assert stack.server is not None
    stack.server.stop()


def set_limits(stack: ChatStack, user: User, **caps: object) -> None:
    columns = ", ".join(caps)
    placeholders = ", ".join(["%s"] * len(caps))
    stack.rows(
        f"insert into public.user_limits (user_id, {columns}) values (%s, {placeholders})"  # noqa: S608 - test-owned names
        " returning user_id",
        user.id,
        *caps.values(),
    )


def reserve_for(stack: ChatStack, message: str) -> Decimal:
    s = stack.settings
    input_bound = (
        s.history_token_budget + estimate_tokens(s.system_prompt) + estimate_tokens(message)
    )
    return Pricer(s).worst_case_cost("anthropic", s.llm_model, input_bound, s.llm_max_tokens)


def fire(
    stack_url: str, user: User, conv: str, message: str, n: int, *, refusal: str = "over_budget"
) -> list[int]:
    """n concurrent requests; each returns its status (streams are read to the end). Every 429
    must carry `refusal`, the guard under test's code, not some other bound's."""
    statuses: list[int] = []
    codes: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(n)

    def one() -> None:
        barrier.wait()
        with httpx.Client(timeout=60) as client:
            with client.stream(
                "POST",
                f"{stack_url}/functions/v1/chat-stream",
                json={"message": message, "conversationId": conv},
                headers=user.headers(),
            ) as response:
                response.read()
                with lock:
                    statuses.append(response.status_code)
                    if response.status_code == 429:
                        codes.append(response.json()["code"])

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert set(codes) <= {refusal}, codes
    return statuses


@pytest.mark.parametrize("n_fit", [3])
def test_budget_race_lets_exactly_n_requests_reach_the_provider(
    guarded: ChatStack, n_fit: int
) -> None:
    user = guarded.new_user()
    conv = user.conversation()
    message = f"race {SLOW_ANSWER}"
    reserve = reserve_for(guarded, message)
    cap = reserve * n_fit + reserve / 2  # fits exactly n_fit worst cases at once
    set_limits(guarded, user, daily_budget_usd=cap)
    since = time.monotonic()

    statuses = fire(guarded.url, user, conv, message, 50)

    assert sorted(statuses) == [200] * n_fit + [429] * (50 - n_fit)
    assert len(guarded.ledger(since)) == n_fit
    ((spent,),) = guarded.rows(
        "select coalesce(sum(cost_usd), 0) from public.usage_logs where user_id = %s", user.id
    )
    assert Decimal(0) < spent <= cap


def test_over_budget_is_429_with_retry_after_and_the_warm_message(guarded: ChatStack) -> None:
    user = guarded.new_user()
    conv = user.conversation()
    set_limits(guarded, user, daily_budget_usd=Decimal("0.000001"))

    response = httpx.post(
        f"{guarded.url}/functions/v1/chat-stream",
        json={"message": "hi", "conversationId": conv},
        headers=user.headers(),
    )

    retry_after = int(response.headers["retry-after"])
    assert response.status_code == 429
    assert response.json()["code"] == "over_budget"
    assert 0 < retry_after <= 86400
    # The daily budget resets at midnight UTC: "tomorrow", not "in a moment" (minutes before
    # midnight it says how many).
    assert response.json()["userMessage"] == user_message("over_budget", retry_after=retry_after)
    assert response.json()["userMessage"].endswith(
        "You can continue tomorrow." if retry_after >= 3600 else " minutes."
    )
    assert guarded.rows(
        "select count(*) from public.messages where conversation_id = %s", conv
    ) == [(0,)]


def test_reservation_settles_to_the_real_cost(guarded: ChatStack) -> None:
    user = guarded.new_user()
    conv = user.conversation()
    message = "settle [[standin tokens=5]]"
    reserve = reserve_for(guarded, message)
    set_limits(guarded, user, daily_budget_usd=reserve * Decimal("1.5"))

    first = stream(guarded, user, {"message": message, "conversationId": conv})
    second = stream(guarded, user, {"message": message, "conversationId": conv})

    # The first request's reservation became its (much smaller) real cost, so a second fits.
    assert first.last["type"] == "done" and second.last["type"] == "done"
    rows = guarded.rows(
        "select t.reserve_usd, t.state = 'finished', u.cost_usd from private.turns t"
        " join public.usage_logs u on u.turn_id = t.turn_id where t.user_id = %s",
        user.id,
    )
    assert len(rows) == 2
    for amount, settled, cost in rows:
        assert settled and amount == reserve and cost < amount


def test_rate_limit_refuses_past_n_per_minute(guarded: ChatStack) -> None:
    user = guarded.new_user()
    conv = user.conversation()
    set_limits(guarded, user, rate_limit_per_minute=4)

    statuses = [
        httpx.post(
            f"{guarded.url}/functions/v1/chat-stream",
            json={"message": "quick [[standin tokens=1]]", "conversationId": conv},
            headers=user.headers(),
            timeout=30,
        ).status_code
        for _ in range(7)
    ]

    assert statuses == [200] * 4 + [429] * 3


def test_concurrent_stream_cap_refuses_the_extra_stream(guarded: ChatStack) -> None:
    user = guarded.new_user()
    conv = user.conversation()
    set_limits(guarded, user, max_concurrent_streams=2)

    statuses = fire(guarded.url, user, conv, f"streams {SLOW_ANSWER}", 5, refusal="rate_limited")

    assert sorted(statuses) == [200, 200, 429, 429, 429]


def test_users_cannot_change_their_caps_or_reservations(guarded: ChatStack) -> None:
    user = guarded.new_user()
    set_limits(guarded, user, daily_budget_usd=Decimal("1"))
    rest = f"{guarded.url}/rest/v1"
    headers = user.headers() | {"Prefer": "return=representation"}

    mine = httpx.get(f"{rest}/user_limits", params={"select": "*"}, headers=headers)
    raised = httpx.patch(
        f"{rest}/user_limits",
        params={"user_id": f"eq.{user.id}"},
        json={"daily_budget_usd": 1000},
        headers=headers,
    )
    reservations = httpx.get(f"{rest}/reservations", headers=headers)

    assert mine.status_code == 200 and len(mine.json()) == 1
    assert raised.status_code in (401, 403)
    assert reservations.status_code == 404  # not exposed at all
    assert guarded.rows(
        "select daily_budget_usd from public.user_limits where user_id = %s", user.id
    ) == [(Decimal("1.000000"),)]


# --- across worker processes ------------------------------------------------------------------
def serve(
    stack: ChatStack,
    *,
    workers: int,
    ttl: int = 600,
    extra: dict[str, str] | None = None,
    output: IO[bytes] | None = None,
) -> tuple[subprocess.Popen[bytes], str]:
    """`chat-stream serve --workers N` against the stack, as production runs it (its stdout and
    stderr into `output` when given)."""
    port = free_port()
    s = stack.settings
    env = (
        {k: v for k, v in os.environ.items() if not k.startswith(("LLM_", "SUPABASE", "DAILY"))}
        | {
            "SUPABASE_URL": stack.url,
            "SUPABASE_ANON_KEY": s.supabase_anon_key.get_secret_value(),
            "SUPABASE_SERVICE_ROLE_KEY": s.supabase_service_role_key.get_secret_value(),
            "AUTH_MODE": "jwks",
            "JWT_ISSUER": s.jwt_issuer,
            "ANTHROPIC_BASE_URL": s.anthropic_base_url,
            "ANTHROPIC_API_KEY": "test-key",
            "DAILY_BUDGET_USD": "1000",
            "RESERVATION_TTL_SECONDS": str(ttl),
            "BILLING_ATTESTATION_KEY": s.billing_attestation_key.get_secret_value(),
            "DB_TIMEOUT_SECONDS": "30",
            "MAX_PENDING_REQUESTS_PER_CLIENT": "0",
            "ADMISSION_MAX_LAG_MS": "0",
            "OUTBOX_DIR": str(Path(s.outbox_dir) / f"serve-{port}"),
            "LOG_LEVEL": "WARNING",
        }
        | (extra or {})
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--workers", str(workers)],
        cwd=ROOT,
        env=env,
        stdout=output,
        stderr=subprocess.STDOUT if output else None,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("chat-stream serve did not start")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_budget_race_holds_across_two_worker_processes(guarded: ChatStack) -> None:
    proc, url = serve(guarded, workers=2)
    try:
        user = guarded.new_user()
        conv = user.conversation()
        message = f"two workers {SLOW_ANSWER}"
        reserve = reserve_for(guarded, message)
        set_limits(guarded, user, daily_budget_usd=reserve * 4 + reserve / 2)
        since = time.monotonic()

        statuses = fire(url, user, conv, message, 50)

        assert sorted(statuses) == [200] * 4 + [429] * 46
        assert len(guarded.ledger(since)) == 4
    finally:
        stop(proc)


def test_rate_limit_holds_across_two_worker_processes(guarded: ChatStack) -> None:
    proc, url = serve(guarded, workers=2)
    try:
        user = guarded.new_user()
        conv = user.conversation()
        set_limits(guarded, user, rate_limit_per_minute=5)

        statuses = fire(url, user, conv, "rpm [[standin tokens=1]]", 12, refusal="rate_limited")

        assert sorted(statuses) == [200] * 5 + [429] * 7
    finally:
        stop(proc)


def test_reservation_of_a_killed_worker_expires_and_frees_the_budget(guarded: ChatStack) -> None:
    proc, url = serve(guarded, workers=1, ttl=600)
    user = guarded.new_user()
    conv = user.conversation()
    message = "killed [[standin tokens=200 delay_ms=100]]"
    reserve = reserve_for(guarded, message)
    set_limits(guarded, user, daily_budget_usd=reserve * Decimal("1.5"))
    try:
        with (
            httpx.Client(timeout=30) as client,
            client.stream(
                "POST",
                f"{url}/functions/v1/chat-stream",
                json={"message": message, "conversationId": conv},
                headers=user.headers(),
            ) as response,
        ):
            assert response.status_code == 200
            next(response.iter_bytes())
            os.killpg(proc.pid, signal.SIGKILL)  # the worker dies holding the reservation
            proc.wait()
    except httpx.HTTPError:
        pass
    finally:
        stop(proc)

    blocked = httpx.post(
        f"{guarded.url}/functions/v1/chat-stream",
        json={"message": "after [[standin tokens=1]]", "conversationId": conv},
        headers=user.headers(),
    )
    assert blocked.status_code == 429
    # The lease runs out (fast-forwarded, so no test waits on the clock): the turn now counts as
    # its abandoned estimate, not its worst case.
    guarded.rows(
        "update private.turns set expires_at = now() where user_id = %s and state = 'streaming'"
        " returning turn_id",
        user.id,
    )
    freed = stream(guarded, user, {"message": "after [[standin tokens=1]]", "conversationId": conv})
    assert freed.status == 200 and freed.last["type"] == "done"
    (abandoned,) = guarded.rows(
        "select estimated, output_unknown, tokens_out, tokens_in > 0, cost_usd > 0"
        " from public.usage_logs where user_id = %s and status = 'abandoned'",
        user.id,
    )
    assert abandoned == (True, True, 0, True, True)
