"""Resume followers are bounded per turn and per user, count as open streams for admission, and
follow a turn produced on another worker by reading: one write to attach, none to follow
(app/api/followers.py, app/chat/resume.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from app.local.stack import LocalStack
from tests.api.test_resume import resume, start_and_leave, wait_for
from tests.support.chat_stack import ChatStack, start_chat_stack

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def producer(
    local_stack: LocalStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ChatStack]:
    stack = start_chat_stack(
        local_stack,
        tmp_path_factory.mktemp("outbox-producer"),
        disconnect_grace_seconds=1.0,
        checkpoint_seconds=0.1,
        max_followers_per_turn=2,
        max_followers_per_user=3,
    )
    yield stack
    assert stack.server is not None
    stack.server.stop()


@pytest.fixture(scope="module")
def elsewhere(
    local_stack: LocalStack, tmp_path_factory: pytest.TempPathFactory, producer: ChatStack
) -> Iterator[ChatStack]:
    """A second worker on the same database: its own feeds, so it follows through the database."""
    stack = start_chat_stack(
        local_stack,
        tmp_path_factory.mktemp("outbox-elsewhere"),
        disconnect_grace_seconds=1.0,
        checkpoint_seconds=0.1,
        jwt_issuer=producer.ctx.jwt_issuer,  # one project: the producer's tokens are good here
    )
    yield stack
    assert stack.server is not None
    stack.server.stop()


def follow_in_background(base: str, user, turn_id: str, results: list) -> threading.Thread:  # type: ignore[no-untyped-def]
    thread = threading.Thread(
        target=lambda: results.append(resume(base, user, turn_id, None)), daemon=True
    )
    thread.start()
    return thread


def test_followers_past_the_per_turn_bound_are_429(producer: ChatStack) -> None:
    user = producer.new_user()
    conv = user.conversation()
    turn_id, _ = start_and_leave(producer.endpoint, user, conv, k=2)
    results: list = []
    threads = [follow_in_background(producer.url, user, turn_id, results) for _ in range(2)]
    time.sleep(0.5)

    third = resume(producer.url, user, turn_id, None)
    for thread in threads:
        thread.join(60)

    assert third[0] == 429 and third[1][0]["code"] == "rate_limited", third
    assert sorted(status for status, _ in results) == [200, 200]
    assert all(events[-1][1]["type"] == "done" for _, events in results)


def test_following_on_another_worker_reads_and_the_turn_runs_to_its_end(
    producer: ChatStack, elsewhere: ChatStack
) -> None:
    user = producer.new_user()
    conv = user.conversation()
    turn_id, _ = start_and_leave(producer.endpoint, user, conv, k=3)
    results: list = []
    thread = follow_in_background(elsewhere.url, user, turn_id, results)
    stamp = "select followed_at from private.turns where turn_id = %s"
    wait_for(lambda: bool(results) or producer.rows(stamp, turn_id)[0][0] is not None)
    assert not results, results
    first = producer.rows(stamp, turn_id)
    time.sleep(1.5)  # past the 1 s grace: the producer keeps going because the turn is followed
    later = producer.rows(stamp, turn_id)
    thread.join(60)

    assert later == first  # following wrote nothing after the attach
    ((status, events),) = results
    assert status == 200 and events[-1][1]["type"] == "done"
    assert producer.rows("select status from public.usage_logs where turn_id = %s", turn_id) == [
        ("completed",)
    ]
