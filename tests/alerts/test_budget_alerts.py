"""Soft budgets and alerts: decided once in the database, delivered once to a signed webhook."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import httpx
import jwt
import pytest
from pydantic import SecretStr

from app.alerts.signature import ALERT_ID_HEADER, SIGNATURE_HEADER, sign, verify
from app.local.postgres import free_port
from app.local.server import ServerThread
from app.local.stack import LocalStack
from app.local.webhooks.sink import create_webhook_app
from tests.support.chat_stack import ChatStack, User, start_chat_stack, stream

pytestmark = pytest.mark.slow
SECRET = "whsec-test-0123456789abcdef"


def _spend(stack: ChatStack, user: User, usd: str) -> None:
    stack.rows(
        "insert into public.usage_logs (request_id, turn_id, attempt_id, user_id, provider,"
        " model, tokens_in, tokens_out, cost_usd, status)"
        " values (gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), %s, 'anthropic',"
        " 'claude-sonnet-4-5', 1, 1, %s, 'completed') returning 1",
        user.id,
        usd,
    )


def _raise(stack: ChatStack, user: User, budgets: str | None) -> int:
    ((count,),) = stack.rows("select private.raise_budget_alerts(%s, %s::jsonb)", user.id, budgets)
    return int(count)


def _alerts(stack: ChatStack, user: User) -> list[tuple[str, str, Decimal]]:
    return [
        (period, threshold, limit)
        for period, threshold, limit in stack.rows(
            "select period, threshold, limit_usd from public.alerts where user_id = %s"
            " order by period, limit_usd",
            user.id,
        )
    ]


def test_raise_budget_alerts_soft_then_80_then_100_percent_each_once(chat_stack: ChatStack) -> None:
    user = chat_stack.new_user()
    chat_stack.rows(
        "insert into public.user_limits (user_id, soft_daily_budget_usd, daily_budget_usd)"
        " values (%s, 1, 2) returning 1",
        user.id,
    )
    budgets = '{"soft_monthly_usd": "3", "monthly_usd": "0"}'  # app-wide: only a soft month

    _spend(chat_stack, user, "0.9")
    assert _raise(chat_stack, user, budgets) == 0
    _spend(chat_stack, user, "0.8")  # 1.7: soft (1) and 80% of 2 (1.6)
    assert _raise(chat_stack, user, budgets) == 2
    assert _raise(chat_stack, user, budgets) == 0  # once: nothing new crossed
    _spend(chat_stack, user, "1.4")  # 3.1: 100% of the day's 2, the month's soft 3
    assert _raise(chat_stack, user, budgets) == 2
    assert _raise(chat_stack, user, None) == 0

    assert _alerts(chat_stack, user) == [
        ("day", "soft", Decimal(1)),
        ("day", "hard_80", Decimal("1.6")),
        ("day", "hard_100", Decimal(2)),
        ("month", "soft", Decimal(3)),
    ]


def test_alerts_rls_each_user_reads_only_their_own(chat_stack: ChatStack) -> None:
    alice, bob = chat_stack.new_user(), chat_stack.new_user()
    _spend(chat_stack, alice, "1")
    assert _raise(chat_stack, alice, '{"soft_daily_usd": "0.5"}') == 1
    url = f"{chat_stack.url}/rest/v1/alerts"

    mine = httpx.get(url, params={"select": "user_id,threshold"}, headers=alice.headers())
    theirs = httpx.get(url, params={"select": "user_id"}, headers=bob.headers())
    forged = httpx.post(
        url,
        json={"user_id": bob.id, "period": "day", "period_start": "2026-01-01",
              "threshold": "soft", "limit_usd": 1, "spent_usd": 1},
        headers=bob.headers(),
    )  # fmt: skip

    assert mine.json() == [{"user_id": alice.id, "threshold": "soft"}]
    assert theirs.status_code == 200 and theirs.json() == []
    assert forged.status_code in (401, 403)


def test_alert_signature_verifies_and_refuses_tampering_and_age() -> None:
    body, key, now = b'{"id":1}', SECRET.encode(), 1_760_000_000
    header = sign(body, key, now)

    assert verify(body, header, key, now + 10)
    assert not verify(b'{"id":2}', header, key, now)
    assert not verify(body, header, b"another key", now)
    assert not verify(body, header, key, now + 301)
    assert not verify(body, "t=x,v1=00", key, now)


@pytest.fixture(scope="module")
def sink_url() -> Iterator[str]:
    """The local webhook sink on its own loopback server (the stack mounts the same app)."""
    port = free_port()
    server = ServerThread(create_webhook_app(), port).start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture(scope="module")
def two_workers(
    local_stack: LocalStack, tmp_path_factory: pytest.TempPathFactory, sink_url: str
) -> Iterator[tuple[ChatStack, ChatStack]]:
    """Two services (each a worker, as of two replicas) on one database."""
    overrides: dict[str, object] = {
        "soft_daily_budget_usd": Decimal("0.000001"),  # the first finished turn crosses it
        "soft_monthly_budget_usd": Decimal("0.000002"),
        "alert_webhook_url": f"{sink_url}/alerts",
        "alert_webhook_secret": SecretStr(SECRET),
        "alert_retry_seconds": 0.2,
        # 50 turns at once on a shared 2-core box, 10 per user serialised by the user's lock:
        # this test judges alerts, not latency.
        "admission_max_lag_ms": 0,
        "max_pending_requests_per_client": 0,  # 50 users' requests, all from this one address
        "db_timeout_seconds": 30.0,
        "llm_availability_budget": 30.0,
        "llm_idle_timeout": 30.0,
    }
    workers = [
        start_chat_stack(local_stack, tmp_path_factory.mktemp(f"outbox-{n}"), **overrides)
        for n in ("a", "b")
    ]
    yield workers[0], workers[1]
    for worker in workers:
        assert worker.server is not None
        worker.server.stop()


def _sink(url: str) -> dict[str, Any]:
    response = httpx.get(f"{url}/api/v1/messages", timeout=5)
    response.raise_for_status()
    return dict(response.json())


def test_two_workers_fifty_concurrent_turns_one_signed_alert_per_user_and_threshold(
    two_workers: tuple[ChatStack, ChatStack], sink_url: str
) -> None:
    first, second = two_workers
    users = [first.new_user() for _ in range(5)]
    conversations = {user.id: user.conversation() for user in users}
    # The same users (and sessions) as the second worker's issuer signs them (each stack has its
    # own issuer); the service confirms the session a token names.
    as_second = {
        u.id: User(u.id, u.email, second.ctx.keys.user_access_token(
            user_id=u.id, issuer=second.ctx.jwt_issuer, email=u.email,
            session_id=jwt.decode(u.token, options={"verify_signature": False})["session_id"],
        ), second)
        for u in users
    }  # fmt: skip
    httpx.post(f"{sink_url}/api/v1/down", params={"seconds": 600}).raise_for_status()

    def turn(index: int) -> str:
        user = users[index % len(users)]
        worker = (first, second)[index % 2]
        user = as_second[user.id] if worker is second else user
        body = {"message": "hi [[standin tokens=3]]", "conversationId": conversations[user.id]}
        result = stream(worker, user, body, timeout=60)
        if not result.events:
            return f"{result.status} {result.body}"
        return "done" if result.last["type"] == "done" else str(result.last)

    with ThreadPoolExecutor(max_workers=50) as pool:
        outcomes = list(pool.map(turn, range(50)))
    assert outcomes == ["done"] * 50

    ids = [user.id for user in users]
    expected = {(user_id, period) for user_id in ids for period in ("day", "month")}
    deadline = time.monotonic() + 20

    def mine() -> list[dict[str, Any]]:  # other tests' alerts in this database go out too
        return [m for m in _sink(sink_url)["messages"] if json.loads(m["body"])["user_id"] in ids]

    def tried() -> list[tuple[Any, ...]]:
        return first.rows(
            "select count(*), count(*) filter (where attempts > 0 and delivered_at is null)"
            " from public.alerts where user_id = any(%s::uuid[])",
            ids,
        )

    while tried() != [(len(expected), len(expected))]:  # each raised and tried, none delivered
        assert time.monotonic() < deadline, tried()
        time.sleep(0.1)
    assert mine() == [] and _sink(sink_url)["refused"] >= len(expected)
    httpx.post(f"{sink_url}/api/v1/down", params={"seconds": 0}).raise_for_status()  # back up
    back_up = time.time()
    deadline = time.monotonic() + 20
    while len(messages := mine()) < len(expected):
        assert time.monotonic() < deadline, messages
        time.sleep(0.1)
    time.sleep(1.0)  # room for a duplicate to arrive, if one were coming
    messages = mine()

    assert min(m["received_at"] for m in messages) >= back_up
    bodies = [json.loads(m["body"]) for m in messages]
    seen = Counter((b["user_id"], b["period"], b["threshold"]) for b in bodies)
    assert seen == Counter({(u, p, "soft"): 1 for u, p in expected})
    for message in messages:
        headers = message["headers"]
        assert verify(message["body"].encode(), headers[SIGNATURE_HEADER], SECRET.encode(),
                      time.time())  # fmt: skip
        assert headers[ALERT_ID_HEADER] == str(json.loads(message["body"])["id"])
    rows = first.rows(
        "select count(*), count(delivered_at) from public.alerts where user_id = any(%s::uuid[])",
        ids,
    )
    assert rows == [(len(expected), len(expected))]
