"""POST /functions/v1/chat-stream end to end: real HTTP, real PostgreSQL, real SSE client."""

from __future__ import annotations

import threading
import time
import uuid
from decimal import Decimal

import httpx
import pytest

from app.core.domain import Usage
from app.core.pricing import Pricer
from app.errors import AUTH_MESSAGE
from app.user_messages import user_message
from tests.support.chat_stack import ChatStack, stream

pytestmark = pytest.mark.slow


def ask(text: str, conversation_id: str, **extra: object) -> dict[str, object]:
    return {"message": text, "conversationId": conversation_id, **extra}


def test_chat_stream_relays_tokens_one_event_at_a_time_and_stores_answer_and_cost(
    chat_stack: ChatStack,
) -> None:
    user = chat_stack.new_user()
    conv = user.conversation()
    began = time.monotonic()

    result = stream(chat_stack, user, ask("Help me plan [[standin tokens=20 delay_ms=25]]", conv))

    assert result.status == 200
    assert result.headers["content-type"].startswith("text/event-stream")
    assert result.headers["cache-control"] == "no-cache"
    assert result.headers["x-accel-buffering"] == "no"
    assert len(result.tokens) == 20
    # Streaming, not buffering: the first token arrived long before the last one was sent.
    token_times = [
        t for e, t in zip(result.events, result.times, strict=True) if e["type"] == "token"
    ]
    assert token_times[-1] - token_times[0] > 0.25
    assert token_times[0] - began < token_times[-1] - began - 0.25
    done = result.last
    assert done["type"] == "done"
    (stored,) = chat_stack.rows(
        "select content, status, token_count from public.messages where id = %s",
        done["messageId"],
    )
    assert stored[0] == "".join(result.tokens)
    assert stored[1] == "completed"
    (usage,) = chat_stack.rows(
        "select provider, model, tokens_in, tokens_out, cache_read_tokens, cache_write_tokens,"
        " cost_usd, status, estimated, price_source, ttft_ms, duration_ms"
        " from public.usage_logs where message_id = %s",
        done["messageId"],
    )
    provider, model, tin, tout, cread, cwrite, cost, status, estimated, source, ttft, duration = (
        usage
    )
    assert (provider, status, estimated) == ("anthropic", "completed", False)
    assert tout == done["usage"]["completion_tokens"] == 20
    assert done["usage"]["prompt_tokens"] == tin + cread + cwrite
    expected = Pricer(chat_stack.settings).price(provider, model, Usage(tin, tout, cread, cwrite))
    assert cost == expected.cost_usd > Decimal(0)
    assert source == expected.source
    assert 0 < ttft <= duration


def test_chat_stream_second_user_sees_none_of_the_first_users_rows(chat_stack: ChatStack) -> None:
    alice, bob = chat_stack.new_user(), chat_stack.new_user()
    conv = alice.conversation()
    stream(chat_stack, alice, ask("hello [[standin tokens=3]]", conv))

    for table in ("conversations", "messages", "usage_logs"):
        response = httpx.get(
            f"{chat_stack.url}/rest/v1/{table}", params={"select": "*"}, headers=bob.headers()
        )
        assert response.status_code == 200, response.text
        assert response.json() == []
    mine = httpx.get(
        f"{chat_stack.url}/rest/v1/messages", params={"select": "role"}, headers=alice.headers()
    )
    assert sorted(m["role"] for m in mine.json()) == ["assistant", "user"]


def test_chat_stream_two_users_streaming_concurrently_get_their_own_answers(
    chat_stack: ChatStack,
) -> None:
    users = [chat_stack.new_user() for _ in range(2)]
    convs = [u.conversation() for u in users]
    results: dict[int, object] = {}

    def run(i: int) -> None:
        results[i] = stream(
            chat_stack, users[i], ask(f"user {i} [[standin tokens=15 delay_ms=20]]", convs[i])
        )

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)

    for i, user in enumerate(users):
        result = results[i]
        assert result.last["type"] == "done"  # type: ignore[attr-defined]
        rows = chat_stack.rows(
            "select m.user_id::text, m.conversation_id::text from public.messages m"
            " where m.id = %s",
            result.last["messageId"],  # type: ignore[attr-defined]
        )
        assert rows == [(user.id, convs[i])]
        usage = chat_stack.rows(
            "select count(*) from public.usage_logs where user_id = %s", user.id
        )
        assert usage == [(1,)]


def test_chat_stream_history_is_the_latest_messages_in_order(chat_stack: ChatStack) -> None:
    user = chat_stack.new_user()
    conv = user.conversation()
    for i in range(3):
        stream(chat_stack, user, ask(f"turn {i} [[standin tokens=2]]", conv))
    since = time.monotonic()

    stream(chat_stack, user, ask("turn 3 [[standin tokens=2]]", conv))

    (entry,) = list(chat_stack.ledger(since))
    assert entry["input_tokens"] > 0
    messages = chat_stack.rows(
        "select role, content from public.messages where conversation_id = %s order by created_at",
        conv,
    )
    assert [r[0] for r in messages] == ["user", "assistant"] * 4


def test_chat_stream_retry_with_same_client_message_id_replays_the_answer_without_billing(
    chat_stack: ChatStack,
) -> None:
    user = chat_stack.new_user()
    conv = user.conversation()
    client_id = str(uuid.uuid4())
    body = ask("once [[standin tokens=6]]", conv, clientMessageId=client_id)
    since = time.monotonic()

    first = stream(chat_stack, user, body)
    retry = stream(chat_stack, user, body)

    assert first.last["type"] == "done" and "replayed" not in first.last
    assert retry.last["type"] == "done" and retry.last["replayed"] is True
    assert retry.last["messageId"] == first.last["messageId"]
    assert "".join(retry.tokens) == "".join(first.tokens)
    assert len(chat_stack.ledger(since)) == 1  # the provider was called once
    rows = chat_stack.rows(
        "select role, count(*) from public.messages where conversation_id = %s group by role"
        " order by role",
        conv,
    )
    assert rows == [("assistant", 1), ("user", 1)]
    assert chat_stack.rows(
        "select count(*) from public.usage_logs where conversation_id = %s", conv
    ) == [(1,)]


def test_chat_stream_retry_after_an_unfinished_turn_generates_a_new_answer(
    chat_stack: ChatStack,
) -> None:
    user = chat_stack.new_user()
    conv = user.conversation()
    body = ask("again [[standin tokens=3 ttft_ms=300]]", conv, clientMessageId=str(uuid.uuid4()))
    with (
        httpx.Client(timeout=10) as client,
        client.stream("POST", chat_stack.endpoint, json=body, headers=user.headers()) as response,
    ):
        assert response.status_code == 200  # the client leaves before the first token

    retry = stream(chat_stack, user, body)

    assert retry.last["type"] == "done" and len(retry.tokens) == 3
    assert "replayed" not in retry.last
    assert chat_stack.rows(
        "select count(*) from public.messages where conversation_id = %s and role = 'user'",
        conv,
    ) == [(1,)]


def test_chat_stream_cors_preflight_allows_the_app(chat_stack: ChatStack) -> None:
    response = httpx.options(
        chat_stack.endpoint,
        headers={
            "Origin": "capacitor://localhost",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, apikey",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] in ("*", "capacitor://localhost")
    assert "authorization" in response.headers["access-control-allow-headers"].lower()


# --- bad input ------------------------------------------------------------------------------
def _post(chat_stack: ChatStack, content: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(chat_stack.endpoint, content=content, headers=headers, timeout=10)


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (b"{not json", "application/json", 400),
        (b"[]", "application/json", 400),
        (b"", "application/json", 400),
        (b'{"conversationId": "CONV"}', "application/json", 400),
        (b'{"message": "", "conversationId": "CONV"}', "application/json", 400),
        (b'{"message": "   \\n\\t ", "conversationId": "CONV"}', "application/json", 400),
        (b'{"message": 42, "conversationId": "CONV"}', "application/json", 400),
        (b'{"message": "hi", "conversationId": "not-a-uuid"}', "application/json", 400),
        (b'{"message": "hi", "conversationId": 7}', "application/json", 400),
        (
            b'{"message": "hi", "conversationId": "CONV", "clientMessageId": "x"}',
            "application/json",
            400,
        ),
        (b'{"message": "hi", "conversationId": "CONV"}', "text/plain", 415),
        (b"message=hi", "application/x-www-form-urlencoded", 415),
    ],
)
def test_chat_stream_bad_input_gets_a_clear_4xx_and_stores_nothing(
    chat_stack: ChatStack, content: bytes, content_type: str, status: int
) -> None:
    user = chat_stack.new_user()
    conv = user.conversation()
    response = _post(
        chat_stack,
        content.replace(b"CONV", conv.encode()),
        user.headers() | {"Content-Type": content_type},
    )
    assert response.status_code == status, response.text
    body = response.json()
    assert body["userMessage"] == user_message(body["code"])
    assert body["error"] and "Traceback" not in response.text
    assert chat_stack.rows("select count(*) from public.messages where user_id = %s", user.id) == [
        (0,)
    ]


def test_chat_stream_oversized_message_is_400_and_oversized_body_is_413(
    chat_stack: ChatStack,
) -> None:
    user = chat_stack.new_user()
    conv = user.conversation()
    limit = chat_stack.settings.max_message_chars
    too_long = ask("x" * (limit + 1), conv)
    refused = _post(
        chat_stack,
        httpx.Request("POST", "/", json=too_long).content,
        user.headers() | {"Content-Type": "application/json"},
    )
    assert refused.status_code == 400
    assert refused.json()["code"] == "message_too_long"
    assert refused.json()["userMessage"] == user_message("message_too_long")
    huge = b'{"message": "' + b"y" * (chat_stack.settings.max_body_bytes + 10) + b'"}'
    response = _post(chat_stack, huge, user.headers() | {"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["userMessage"] == user_message("payload_too_large")


@pytest.mark.parametrize(
    ("message", "code"),
    [("", "message_empty"), ("  \\n\\t ", "message_empty"), ("a\\u0000b", "invalid_request")],
)
def test_chat_stream_empty_message_has_its_own_code_and_sentence(
    chat_stack: ChatStack, message: str, code: str
) -> None:
    user = chat_stack.new_user()
    content = f'{{"message": "{message}", "conversationId": "{user.conversation()}"}}'
    response = _post(chat_stack, content.encode(), user.headers())
    assert response.status_code == 400
    assert response.json()["code"] == code
    assert response.json()["userMessage"] == user_message(code)


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Basic abc",
        "Bearer",
        "Bearer not.a.jwt",
        "Bearer ANON",
        "Bearer SERVICE",
        "Bearer EXPIRED",
    ],
)
def test_chat_stream_refuses_missing_or_bad_tokens_with_401(
    chat_stack: ChatStack, authorization: str | None
) -> None:
    user = chat_stack.new_user()
    conv = user.conversation()
    expired = chat_stack.new_user(expires_in=60, now=int(time.time()) - 3600)
    keys = chat_stack.ctx.keys
    headers = {"Content-Type": "application/json", "apikey": keys.anon_key}
    if authorization is not None:
        headers["Authorization"] = (
            authorization.replace("ANON", keys.anon_key)
            .replace("SERVICE", keys.service_role_key)
            .replace("EXPIRED", expired.token)
        )
    response = _post(chat_stack, httpx.Request("POST", "/", json=ask("hi", conv)).content, headers)
    assert response.status_code == 401
    assert response.json()["userMessage"] == AUTH_MESSAGE


def test_chat_stream_someone_elses_or_missing_conversation_is_404_revealing_nothing(
    chat_stack: ChatStack,
) -> None:
    owner, intruder = chat_stack.new_user(), chat_stack.new_user()
    conv = owner.conversation()
    answers = [
        _post(
            chat_stack,
            httpx.Request("POST", "/", json=ask("hi", c)).content,
            intruder.headers() | {"Content-Type": "application/json"},
        )
        for c in (conv, str(uuid.uuid4()))
    ]
    assert [a.status_code for a in answers] == [404, 404]
    assert answers[0].json() == answers[1].json()
    assert chat_stack.rows(
        "select count(*) from public.messages where conversation_id = %s", conv
    ) == [(0,)]
