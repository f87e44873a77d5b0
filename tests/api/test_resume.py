"""Resumable streams over real HTTP: a dropped connection resumes with Last-Event-ID, on the same
worker or another one, and the turn is billed once however often it is resumed."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.local.stack import LocalStack
from app.user_messages import user_message
from tests.api.test_guards import serve, stop
from tests.support.chat_stack import ChatStack, User, start_chat_stack

pytestmark = pytest.mark.slow

ANSWER = "[[standin tokens=30 delay_ms=60]]"


@pytest.fixture(scope="module")
def resumable(
    local_stack: LocalStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ChatStack]:
    stack = start_chat_stack(
        local_stack,
        tmp_path_factory.mktemp("outbox"),
        disconnect_grace_seconds=3.0,
        checkpoint_seconds=0.1,
    )
    yield stack
    assert stack.server is not None
    stack.server.stop()


def _events(lines: Iterator[str], stop_after_tokens: int | None = None) -> list[tuple[str, dict]]:
    """(id, event) pairs from an SSE body, read line by line like EventSource does."""
    events: list[tuple[str, dict]] = []
    event_id, data = "", []
    for line in lines:
        if line.startswith(":"):
            continue
        if line.startswith("id: "):
            event_id = line[4:]
        elif line.startswith("data: "):
            data.append(line[6:])
        elif line == "" and data:
            events.append((event_id, json.loads("\n".join(data))))
            data = []
            tokens = sum(1 for _, e in events if e["type"] == "token")
            if stop_after_tokens is not None and tokens >= stop_after_tokens:
                break
    return events


def start_and_leave(endpoint: str, user: User, conv: str, k: int) -> tuple[str, list]:
    """Start a turn, read k token events, hang up. Returns the turn id and what was read."""
    body = {"message": f"resume me {ANSWER}", "conversationId": conv}
    with httpx.Client(timeout=30) as client:
        with client.stream("POST", endpoint, json=body, headers=user.headers()) as response:
            assert response.status_code == 200
            turn_id = response.headers["x-turn-id"]
            seen = _events(response.iter_lines(), stop_after_tokens=k)
    return turn_id, seen


def resume(base: str, user: User, turn_id: str, last_id: str | None) -> tuple[int, list]:
    headers = user.headers() | ({"Last-Event-ID": last_id} if last_id else {})
    url = f"{base}/functions/v1/chat-stream/turns/{turn_id}"
    with httpx.Client(timeout=30) as client:
        with client.stream("GET", url, headers=headers) as response:
            if response.status_code != 200:
                response.read()
                return response.status_code, [response.json()]
            return 200, _events(response.iter_lines())


def _tokens(events: list) -> list[str]:
    return [e["content"] for _, e in events if e["type"] == "token"]


def _usage_rows(stack: ChatStack, turn_id: str) -> list[tuple]:
    return stack.rows(
        "select status, tokens_out from public.usage_logs where turn_id = %s", turn_id
    )


def wait_for(condition, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_resume_within_the_window_gets_exactly_the_missing_tokens(resumable: ChatStack) -> None:
    user = resumable.new_user()
    conv = user.conversation()
    turn_id, seen = start_and_leave(resumable.endpoint, user, conv, k=5)

    status, rest = resume(resumable.url, user, turn_id, seen[-1][0])

    assert status == 200
    assert [i for i, _ in seen] == [f"{turn_id}:{n}" for n in range(1, 6)]
    assert [i for i, _ in rest] == [f"{turn_id}:{n}" for n in range(6, 32)]  # 26 tokens + done
    assert len(_tokens(seen) + _tokens(rest)) == 30
    done = rest[-1][1]
    assert done["type"] == "done" and done["turnId"] == turn_id
    (message,) = resumable.rows(
        "select content, status from public.messages where turn_id = %s", turn_id
    )
    assert message == ("".join(_tokens(seen) + _tokens(rest)), "completed")
    assert _usage_rows(resumable, turn_id) == [("completed", 30)]  # billed once


def test_resume_without_last_event_id_replays_from_the_start(resumable: ChatStack) -> None:
    user = resumable.new_user()
    turn_id, seen = start_and_leave(resumable.endpoint, user, user.conversation(), k=3)

    status, everything = resume(resumable.url, user, turn_id, None)

    assert status == 200
    assert _tokens(everything)[:3] == _tokens(seen) and len(_tokens(everything)) == 30
    assert everything[-1][1]["type"] == "done"


def test_resume_after_done_replays_the_stored_answer(resumable: ChatStack) -> None:
    user = resumable.new_user()
    turn_id, seen = start_and_leave(resumable.endpoint, user, user.conversation(), k=4)
    wait_for(lambda: bool(_usage_rows(resumable, turn_id)))  # it finished without a client
    time.sleep(4.0)  # past the grace window: the live feed is gone, the database answers

    status, rest = resume(resumable.url, user, turn_id, seen[-1][0])

    assert status == 200
    assert [i for i, _ in rest] == [f"{turn_id}:{n}" for n in range(5, 32)]
    (content,) = resumable.rows("select content from public.messages where turn_id = %s", turn_id)[
        0
    ]
    assert "".join(_tokens(seen) + _tokens(rest)) == content
    assert rest[-1][1]["type"] == "done"
    assert _usage_rows(resumable, turn_id) == [("completed", 30)]


def test_another_users_resume_is_404(resumable: ChatStack) -> None:
    owner, stranger = resumable.new_user(), resumable.new_user()
    turn_id, seen = start_and_leave(resumable.endpoint, owner, owner.conversation(), k=2)

    status, body = resume(resumable.url, stranger, turn_id, seen[-1][0])
    unknown, unknown_body = resume(
        resumable.url, stranger, "00000000-0000-4000-8000-000000000000", None
    )
    not_an_id, not_an_id_body = resume(resumable.url, stranger, "not-a-turn", None)

    assert status == unknown == not_an_id == 404
    # A turn, not a conversation: the app says the answer cannot be found.
    for answer in (body, unknown_body, not_an_id_body):
        assert answer[0]["code"] == "turn_not_found"
        assert answer[0]["userMessage"] == user_message("turn_not_found")
        assert answer[0]["error"] == "Turn not found"


def test_resume_after_the_window_ends_in_the_partial_answer_stored_once(
    resumable: ChatStack,
) -> None:
    user = resumable.new_user()
    conv = user.conversation()
    body = {"message": "slow [[standin tokens=200 delay_ms=100]]", "conversationId": conv}
    with httpx.Client(timeout=30) as client:
        with client.stream("POST", resumable.endpoint, json=body, headers=user.headers()) as r:
            turn_id = r.headers["x-turn-id"]
            seen = _events(r.iter_lines(), stop_after_tokens=3)
    # Nobody resumes within the window: the upstream is cancelled, the partial answer stored.
    wait_for(lambda: bool(_usage_rows(resumable, turn_id)), timeout=30)

    status, rest = resume(resumable.url, user, turn_id, seen[-1][0])

    ((content, msg_status),) = resumable.rows(
        "select content, status from public.messages where turn_id = %s", turn_id
    )
    assert msg_status == "partial" and content.startswith("".join(_tokens(seen)))
    assert status == 200 and rest[-1][1]["type"] == "expired"
    assert "".join(_tokens(seen) + _tokens(rest)) == content
    assert [s for s, _ in _usage_rows(resumable, turn_id)] == ["partial"]


def test_resume_on_another_worker_follows_the_checkpoints(
    resumable: ChatStack, tmp_path: Path
) -> None:
    env = {"DISCONNECT_GRACE_SECONDS": "3", "CHECKPOINT_SECONDS": "0.1"}
    producer, producer_url = serve(resumable, workers=1, extra=env)
    follower, follower_url = serve(resumable, workers=1, extra=env)
    try:
        user = resumable.new_user()
        conv = user.conversation()
        endpoint = f"{producer_url}/functions/v1/chat-stream"
        turn_id, seen = start_and_leave(endpoint, user, conv, k=5)

        status, rest = resume(follower_url, user, turn_id, seen[-1][0])
    finally:
        stop(producer)
        stop(follower)

    assert status == 200
    assert [i for i, _ in rest] == [f"{turn_id}:{n}" for n in range(6, 32)]
    assert len(_tokens(seen) + _tokens(rest)) == 30
    assert rest[-1][1]["type"] == "done"
    assert _usage_rows(resumable, turn_id) == [("completed", 30)]


@pytest.mark.parametrize("client_listens", [True, False], ids=["client-listens", "client-left"])
def test_resume_of_a_drained_turn_ends_with_the_retry_error_until_retention_is_over(
    resumable: ChatStack, client_listens: bool
) -> None:
    env = {"DISCONNECT_GRACE_SECONDS": "10", "SHUTDOWN_GRACE_SECONDS": "0.5"}
    producer, producer_url = serve(resumable, workers=1, extra=env)
    expired_follower, expired_url = serve(
        resumable, workers=1, extra={"RESUME_RETENTION_SECONDS": "0"}
    )
    try:
        user = resumable.new_user()
        conv = user.conversation()
        body = {"message": "drained [[standin tokens=300 delay_ms=50]]", "conversationId": conv}
        endpoint = f"{producer_url}/functions/v1/chat-stream"
        with httpx.Client(timeout=30) as client:
            with client.stream("POST", endpoint, json=body, headers=user.headers()) as response:
                turn_id = response.headers["x-turn-id"]
                lines = response.iter_lines()
                seen = _events(lines, stop_after_tokens=3)
                if client_listens:
                    producer.send_signal(signal.SIGTERM)
                    live = seen + _events(lines)
        if not client_listens:
            producer.send_signal(signal.SIGTERM)
        producer.wait(30)

        status, rest = resume(resumable.url, user, turn_id, seen[-1][0])
        late_status, late = resume(expired_url, user, turn_id, seen[-1][0])
    finally:
        stop(producer)
        stop(expired_follower)

    retry = {"type": "error", "message": user_message("retry"), "code": "retry"}
    if client_listens:
        assert live[-1][1] == retry  # what the live stream got ...
    assert status == 200 and rest[-1][1] == retry  # ... is what a resume gets
    ((content,),) = resumable.rows(
        "select content from public.messages where turn_id = %s", turn_id
    )
    assert "".join(_tokens(seen) + _tokens(rest)) == content  # no gap, no duplicate
    seqs = [int(i.rsplit(":", 1)[1]) for i, _ in seen + rest]
    assert seqs == list(range(1, len(seqs) + 1))
    assert [s for s, _ in _usage_rows(resumable, turn_id)] == ["partial"]
    assert late_status == 200 and late[-1][1]["type"] == "expired"  # once retention is over
    assert late[-1][1]["content"] == content
