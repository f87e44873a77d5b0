"""What a clientMessageId and a conversation stand for (docs/design.md §13), through the real
endpoint and the real Data API as signed-in users: a replay is a request (the rate limit counts it)
and answers as the turn it replays; one clientMessageId is one message; a conversation deleted and
re-created under the same id is another conversation, whoever re-creates it.
"""

from __future__ import annotations

import json
import time
import uuid
from decimal import Decimal

import httpx
import pytest

from app.core.domain import Caller, Caps, Reservation, TurnStart, TurnTerms
from app.store.attestation import Attestor, key_bytes
from app.store.payloads import begin_payload
from tests.security.data_api import (
    BackgroundStream,
    assert_stored_as_billed,
    rest,
    service_client,
    set_limits,
    settled_ledger,
    streaming_turns,
)
from tests.support.chat_stack import ChatStack, User, stream

pytestmark = pytest.mark.slow

REUSED_MESSAGE = "I already have a different message under that id. Send it again as new."


def ask(message: str, conv: str, **extra: object) -> dict[str, object]:
    return {"message": message, "conversationId": conv, **extra}


def post(stack: ChatStack, user: User, body: dict[str, object]) -> httpx.Response:
    return httpx.post(stack.endpoint, json=body, headers=user.headers(), timeout=30)


def test_replays_of_an_answered_client_message_id_count_against_the_rate_limit(
    chat_stack: ChatStack,
) -> None:
    user = chat_stack.new_user()
    conv = user.conversation()
    set_limits(chat_stack, user, rate_limit_per_minute=2)
    body = ask("count me [[standin tokens=4]]", conv, clientMessageId=str(uuid.uuid4()))
    since = time.monotonic()
    answered = stream(chat_stack, user, body)
    assert answered.last["type"] == "done"
    original = answered.last["turnId"]

    replays = [stream(chat_stack, user, body) for _ in range(4)]

    # The turn and its first replay are the two requests of this minute; the rest wait.
    assert [r.status for r in replays] == [200, 429, 429, 429]
    first = replays[0]
    assert first.last.get("replayed") is True
    assert first.last["messageId"] == answered.last["messageId"]
    assert first.last["turnId"] == original  # the turn it replays, not a new one
    assert first.headers["x-turn-id"] == original
    assert {r.body["code"] for r in replays[1:]} == {"rate_limited"}
    assert all(int(r.headers["retry-after"]) >= 1 for r in replays[1:])
    # Nothing generated or billed again.
    assert len(settled_ledger(chat_stack, since, 1)) == 1
    assert chat_stack.rows(
        "select count(*) from public.usage_logs where user_id = %s", user.id
    ) == [(1,)]


def test_same_client_message_id_with_another_message_is_409_and_stores_nothing(
    chat_stack: ChatStack,
) -> None:
    user = chat_stack.new_user()
    conv = user.conversation()
    client_id = str(uuid.uuid4())
    since = time.monotonic()
    answered = stream(
        chat_stack,
        user,
        ask("the first words [[standin tokens=3]]", conv, clientMessageId=client_id),
    )
    assert answered.last["type"] == "done"
    before = chat_stack.rows(
        "select role, content from public.messages where user_id = %s order by created_at",
        user.id,
    )

    reused = post(
        chat_stack, user, ask("other words [[standin tokens=3]]", conv, clientMessageId=client_id)
    )

    assert reused.status_code == 409, reused.text
    assert reused.json()["code"] == "client_message_id_reused"
    assert reused.json()["userMessage"] == REUSED_MESSAGE
    assert (
        chat_stack.rows(
            "select role, content from public.messages where user_id = %s order by created_at",
            user.id,
        )
        == before
    )
    assert chat_stack.rows("select count(*) from private.turns where user_id = %s", user.id) == [
        (1,)
    ]
    assert len(settled_ledger(chat_stack, since, 1)) == 1  # the model was not called again


def test_finish_after_the_conversation_was_deleted_and_recreated_keeps_usage_skips_message(
    chat_stack: ChatStack,
) -> None:
    user = chat_stack.new_user()
    conv = user.conversation()
    since = time.monotonic()
    turn = BackgroundStream(
        chat_stack.endpoint, user, ask("recreate me [[standin tokens=40 delay_ms=100]]", conv)
    )
    turn.wait_streaming()
    (turn_id,) = streaming_turns(chat_stack, user)

    deleted = rest(chat_stack, user, "DELETE", "conversations", params={"id": f"eq.{conv}"})
    recreated = rest(
        chat_stack,
        user,
        "POST",
        "conversations",
        body={"id": conv, "user_id": user.id, "title": "a new one"},
    )
    turn.join()

    assert deleted.status_code == 200 and recreated.status_code == 201, recreated.text
    assert turn.last["type"] == "done"
    assert_stored_as_billed(chat_stack, user, settled_ledger(chat_stack, since, 1))
    assert chat_stack.rows(
        "select turn_id::text, conversation_id, message_id from public.usage_logs"
        " where user_id = %s",
        user.id,
    ) == [(turn_id, None, None)]
    # The new conversation is empty: no answer without its question.
    assert chat_stack.rows(
        "select count(*) from public.messages where conversation_id = %s", conv
    ) == [(0,)]


def test_abandoned_turn_whose_conversation_id_another_user_took_is_stored_without_it(
    chat_stack: ChatStack,
) -> None:
    owner, other = chat_stack.new_user(), chat_stack.new_user()
    conv = owner.conversation()
    turn_id = begin_as_the_service(chat_stack, owner, conv, "left behind")

    rest(chat_stack, owner, "DELETE", "conversations", params={"id": f"eq.{conv}"})
    taken = rest(
        chat_stack,
        other,
        "POST",
        "conversations",
        body={"id": conv, "user_id": other.id, "title": "mine now"},
    )
    # The worker is gone: its lease runs out (fast-forwarded) and the sweeper records the turn.
    chat_stack.rows(
        "update private.turns set expires_at = now() where turn_id = %s returning 1", turn_id
    )
    with service_client(chat_stack) as service:
        swept = service.rpc("chat_sweep", {}).execute().data

    assert taken.status_code == 201, taken.text
    assert swept >= 1
    assert chat_stack.rows(
        "select user_id::text, conversation_id, status from public.usage_logs where turn_id = %s",
        turn_id,
    ) == [(owner.id, None, "abandoned")]
    # Nothing of the owner's shows up in the other user's conversation.
    visible = rest(chat_stack, other, "GET", "usage_logs", params={"select": "*"})
    assert visible.json() == []


def begin_as_the_service(stack: ChatStack, user: User, conv: str, message: str) -> str:
    """`chat_begin` exactly as the service sends it (attested, with the user's token), for a
    turn whose worker then dies: nothing renews or finishes it."""
    start = TurnStart(conv, message, None, str(uuid.uuid4()))
    terms = TurnTerms(
        reservation=Reservation(
            Decimal("0.01"), "anthropic", "claude-sonnet-4-5", Decimal(3), 0, 60
        ),
        caps=Caps(),
        history_tokens=6000,
        history_messages=50,
    )
    payload = begin_payload(Caller(user.id, user.token), start, terms, time.time())
    params = Attestor(key_bytes(stack.ctx.keys.attestation_key.decode())).params(
        "chat_begin", payload, field="p_turn"
    )
    response = rest(stack, user, "POST", "rpc/chat_begin", body=params)
    assert response.status_code == 200, response.text
    assert "user_message_id" in json.loads(response.text)
    return start.turn_id
