"""Stopping a turn over real HTTP: the owner's POST .../stop closes the upstream at once, stores
the answer so far and bills what was generated, on the same worker or from another one, with no
disconnect grace; anyone else gets 404."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import aiohttp
import httpx
import pytest

from app.chat.accounting import estimate_tokens
from app.config.keys import secret_key
from app.core.domain import TurnSignals
from app.core.ports import SIGNALS_BATCH
from app.errors import StoreRejected
from app.local.stack import LocalStack
from app.store.attestation import Attestor, key_bytes
from app.store.chat_store import SupabaseChatStore
from app.store.data_api import DataApi
from tests.api.test_guards import serve, stop
from tests.api.test_resume import _tokens, _usage_rows, resume, wait_for
from tests.support.chat_stack import ChatStack, User, start_chat_stack

pytestmark = pytest.mark.slow

LONG = "stop me [[standin tokens=400 delay_ms=50]]"  # 20 s if nobody stops it
GRACE = 10.0  # as `make run` has it: a stop must not wait for it


@pytest.fixture(scope="module")
def stoppable(
    local_stack: LocalStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ChatStack]:
    stack = start_chat_stack(
        local_stack,
        tmp_path_factory.mktemp("outbox"),
        disconnect_grace_seconds=GRACE,
        checkpoint_seconds=0.1,
        stop_poll_seconds=0.2,
    )
    yield stack
    assert stack.server is not None
    stack.server.stop()


class Listener:
    """Streams a turn in a thread and records its events; `tokens_seen` waits for k tokens."""

    def __init__(self, endpoint: str, user: User, conv: str, message: str = LONG) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.turn_id = ""
        self.ended_at = 0.0
        self._headers = user.headers()
        self._body = {"message": message, "conversationId": conv}
        self._endpoint = endpoint
        self._opened = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._opened.wait(30)

    def _run(self) -> None:
        with httpx.Client(timeout=60) as client:
            with client.stream(
                "POST", self._endpoint, json=self._body, headers=self._headers
            ) as response:
                self.turn_id = response.headers["x-turn-id"]
                self._opened.set()
                event_id = ""
                for line in response.iter_lines():
                    if line.startswith("id: "):
                        event_id = line[4:]
                    elif line.startswith("data: "):
                        self.events.append((event_id, json.loads(line[6:])))
        self.ended_at = time.monotonic()

    def tokens_seen(self, k: int) -> None:
        wait_for(lambda: len(_tokens(self.events)) >= k)

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the stream did not end"


def post_stop(base: str, user: User, turn_id: str) -> httpx.Response:
    url = f"{base}/functions/v1/chat-stream/turns/{turn_id}/stop"
    return httpx.post(url, headers=user.headers(), timeout=30)


def _ledger_entry(stack: ChatStack, since: float) -> dict[str, Any]:
    (entry,) = stack.ledger(since)
    return entry


def test_stop_ends_the_stream_at_once_with_done_and_stores_the_answer_so_far(
    stoppable: ChatStack,
) -> None:
    user = stoppable.new_user()
    since = time.monotonic()
    listener = Listener(stoppable.endpoint, user, user.conversation())
    listener.tokens_seen(5)

    asked = time.monotonic()
    answer = post_stop(stoppable.url, user, listener.turn_id)
    listener.join(10)

    assert answer.status_code == 202
    assert answer.json() == {"turnId": listener.turn_id, "state": "stopping"}
    assert listener.ended_at - asked < 2.0  # not the 20 s the answer would take
    done = listener.events[-1][1]
    assert done["type"] == "done" and done["stopped"] is True
    tokens = _tokens(listener.events)
    assert 5 <= len(tokens) < 400
    ((message_id, content, status),) = stoppable.rows(
        "select id::text, content, status from public.messages"
        " where turn_id = %s and role = 'assistant'",
        listener.turn_id,
    )
    assert (message_id, content, status) == (done["messageId"], "".join(tokens), "partial")
    ((usage_status, tokens_out),) = _usage_rows(stoppable, listener.turn_id)
    assert usage_status == "partial"
    entry = _ledger_entry(stoppable, since)
    assert entry["closed_at"] - asked < 2.0  # the upstream was closed, not left to finish
    assert entry["output_tokens"] < 400
    # Billed for what was generated (estimated, as for any answer cut short), not the 400.
    assert tokens_out == max(len(tokens), estimate_tokens(content)) < 400


def test_stop_after_the_client_left_does_not_wait_for_the_grace(stoppable: ChatStack) -> None:
    user = stoppable.new_user()
    body = {"message": LONG, "conversationId": user.conversation()}
    with httpx.Client(timeout=30) as client:
        with client.stream("POST", stoppable.endpoint, json=body, headers=user.headers()) as r:
            turn_id = r.headers["x-turn-id"]
            for line in r.iter_lines():
                if line.startswith("data: "):
                    break  # one event, then hang up: the turn streams on for the grace

    asked = time.monotonic()
    answer = post_stop(stoppable.url, user, turn_id)
    wait_for(lambda: bool(_usage_rows(stoppable, turn_id)), timeout=GRACE)

    assert answer.status_code == 202
    assert time.monotonic() - asked < 3.0
    assert [s for s, _ in _usage_rows(stoppable, turn_id)] == ["partial"]
    status, rest = resume(stoppable.url, user, turn_id, None)
    assert status == 200
    assert rest[-1][1]["type"] == "done" and rest[-1][1]["stopped"] is True


def test_stop_of_another_users_turn_is_404_and_the_turn_streams_on(stoppable: ChatStack) -> None:
    owner, stranger = stoppable.new_user(), stoppable.new_user()
    message = "not yours [[standin tokens=30 delay_ms=30]]"
    listener = Listener(stoppable.endpoint, owner, owner.conversation(), message)
    listener.tokens_seen(2)

    refused = post_stop(stoppable.url, stranger, listener.turn_id)
    unknown = post_stop(stoppable.url, stranger, "00000000-0000-4000-8000-000000000000")
    not_an_id = post_stop(stoppable.url, owner, "not-a-turn")
    listener.join(30)

    assert (refused.status_code, unknown.status_code, not_an_id.status_code) == (404, 404, 404)
    assert refused.json()["code"] == "turn_not_found"
    assert len(_tokens(listener.events)) == 30
    assert listener.events[-1][1]["type"] == "done" and "stopped" not in listener.events[-1][1]


def test_stop_of_an_unknown_turn_says_the_turn_is_not_found_and_reads_the_id_as_resume_does(
    stoppable: ChatStack,
) -> None:
    owner, stranger = stoppable.new_user(), stoppable.new_user()
    listener = Listener(stoppable.endpoint, owner, owner.conversation(), "x [[standin tokens=2]]")
    listener.join(30)
    turn = listener.turn_id
    spellings = [f"urn:uuid:{turn}", "{" + turn + "}", turn.replace("-", ""), "\u0660" * 32]

    answers = [post_stop(stoppable.url, stranger, turn)]
    answers += [post_stop(stoppable.url, owner, spelling) for spelling in spellings]

    for answer in answers:  # someone else's turn, or not a turn id: what resume answers
        assert answer.status_code == 404
        assert answer.json()["code"] == "turn_not_found"
        assert "conversation" not in answer.json()["userMessage"]
    upper = post_stop(stoppable.url, owner, turn.upper())
    assert upper.json() == {"turnId": turn, "state": "ended"}


def test_stop_of_a_turn_that_already_ended_changes_nothing(stoppable: ChatStack) -> None:
    user = stoppable.new_user()
    listener = Listener(stoppable.endpoint, user, user.conversation(), "short [[standin tokens=3]]")
    listener.join(30)

    answer = post_stop(stoppable.url, user, listener.turn_id)

    assert answer.status_code == 200
    assert answer.json() == {"turnId": listener.turn_id, "state": "ended"}
    assert _usage_rows(stoppable, listener.turn_id) == [("completed", 3)]


def test_stop_on_another_worker_reaches_the_turn_through_the_database(
    stoppable: ChatStack,
) -> None:
    env = {"DISCONNECT_GRACE_SECONDS": str(GRACE), "STOP_POLL_SECONDS": "0.2"}
    producer, producer_url = serve(stoppable, workers=1, extra=env)
    other, other_url = serve(stoppable, workers=1, extra=env)
    try:
        user = stoppable.new_user()
        listener = Listener(f"{producer_url}/functions/v1/chat-stream", user, user.conversation())
        listener.tokens_seen(5)

        asked = time.monotonic()
        answer = post_stop(other_url, user, listener.turn_id)
        listener.join(10)
    finally:
        stop(producer)
        stop(other)

    assert answer.status_code == 202
    assert listener.ended_at - asked < 3.0  # one stop poll and the close, not 20 s
    done = listener.events[-1][1]
    assert done["type"] == "done" and done["stopped"] is True
    ((content, status),) = stoppable.rows(
        "select content, status from public.messages where turn_id = %s and role = 'assistant'",
        listener.turn_id,
    )
    assert (content, status) == ("".join(_tokens(listener.events)), "partial")
    assert [s for s, _ in _usage_rows(stoppable, listener.turn_id)] == ["partial"]


def _signals(stack: ChatStack, turns: list[tuple[str, str]]) -> dict[str, TurnSignals]:
    """`chat_turn_signals` through the service's own store, as the stop poll sends it."""
    s = stack.settings

    async def ask() -> dict[str, TurnSignals]:
        async with aiohttp.ClientSession() as session:
            service = DataApi(stack.url, secret_key(s), session)
            attestor = Attestor(key_bytes(s.billing_attestation_key.get_secret_value()))
            return await SupabaseChatStore(service, attestor, service=service).signals(turns)

    return asyncio.run(ask())


def test_the_batched_signals_answer_only_for_each_turns_own_user(stoppable: ChatStack) -> None:
    """The stop poll's RPC reads the flag another worker's `chat_stop` sets (set here in SQL, so
    no local stop short-cuts it), for the listed user's own turn only; and the producer's poll
    then ends the stream."""
    owner, stranger = stoppable.new_user(), stoppable.new_user()
    listener = Listener(stoppable.endpoint, owner, owner.conversation())
    listener.tokens_seen(3)
    turn = listener.turn_id

    pairs = [(owner.id, turn), (stranger.id, turn), (owner.id, str(uuid.uuid4()))]
    before = _signals(stoppable, pairs)
    stoppable.rows(
        "update private.turns set stop_requested_at = now() where turn_id = %s returning 1", turn
    )
    after = _signals(stoppable, pairs)
    listener.join(10)

    assert before == {turn: TurnSignals(followed=False, stop=False)}  # the stranger's pair: nothing
    assert after == {turn: TurnSignals(followed=False, stop=True)}
    done = listener.events[-1][1]
    assert done["type"] == "done" and done["stopped"] is True


def test_the_batched_signals_refuse_malformed_and_oversized_batches(stoppable: ChatStack) -> None:
    user = stoppable.new_user()
    with pytest.raises(StoreRejected):
        _signals(stoppable, [(user.id, "not-a-uuid")])
    with pytest.raises(StoreRejected):
        _signals(stoppable, [(user.id, str(uuid.uuid4())) for _ in range(SIGNALS_BATCH + 1)])
    assert _signals(stoppable, []) == {}
