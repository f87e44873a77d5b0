"""What a demanding, hostile or just unusual client sends to the chat stream's HTTP edge.

Every case goes over real HTTP on 127.0.0.1 to the whole stack (gateway, Auth, PostgREST and LLM
stand-ins, the service) and checks three things: the status and the `{"error", "userMessage",
"code"}` JSON shape, what reached the database (nothing, or exactly the message sent), and that
the server logged no unhandled error on the way.

Decisions these tests pin down (the contract is docs/design.md §3, §4, §10):
- JSON is UTF-8 (RFC 8259 §8.1): a `charset` parameter is ignored, a leading UTF-8 BOM is
  skipped, anything that is not UTF-8 is a 400. Duplicate keys: the last one wins, as in
  JavaScript's `JSON.parse`. Unknown fields are ignored. A body with a `Content-Encoding` is 415.
- `message` may hold any Unicode text except NUL (PostgreSQL `text` cannot store it): 400.
  Its limit counts code points.
- Ids (`conversationId`, `clientMessageId`) are the canonical 8-4-4-4-12 hex form in either case;
  braces, `urn:uuid:` and bare 32-hex forms are 400, like a token's `sub` (app/auth/claims.py).
- More than one `Authorization` header is a 400: which one counts would be a guess.
- `Accept` is not negotiated: the answer is always the event stream (the seed's behaviour).
- A body that stops arriving is a 408 after `BODY_TIMEOUT_SECONDS`; a client that hangs up
  while sending gets nothing and costs nothing (no error logged, nothing stored).
- Framing the HTTP server itself refuses (negative or non-numeric Content-Length,
  Content-Length with chunked) is uvicorn's plain-text 400: the app never sees those requests.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import socket
import time
import uuid
import zlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.errors import AUTH_MESSAGE
from app.local.stack import LocalStack
from app.user_messages import user_message
from tests.support.chat_stack import ChatStack, User, start_chat_stack

QUICK = " [[standin tokens=1]]"  # the LLM stand-in answers with one token: fast cases


# --- helpers ----------------------------------------------------------------------------------
class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(autouse=True)
def no_server_errors() -> Iterator[list[logging.LogRecord]]:
    """Fail the test when the server logged an error (a 500 path, a traceback) meanwhile.

    Yields the records, so a test that expects one error can take it out.
    """
    handler = _Collect()
    loggers = [logging.getLogger(), logging.getLogger("uvicorn.error")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield handler.records
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
    assert [r.getMessage() for r in handler.records] == []


def body_for(conversation_id: str, message: str = "hi" + QUICK, **extra: object) -> bytes:
    return json.dumps({"message": message, "conversationId": conversation_id, **extra}).encode()


def post(
    stack: ChatStack,
    content: bytes | Iterator[bytes],
    headers: Mapping[str, str] | Sequence[tuple[str, str]] | Sequence[tuple[bytes, bytes]],
) -> httpx.Response:
    return httpx.post(stack.endpoint, content=content, headers=headers, timeout=15)


def json_headers(user: User) -> dict[str, str]:
    return user.headers() | {"Content-Type": "application/json"}


def user_messages(stack: ChatStack, user: User) -> list[str]:
    rows = stack.rows(
        "select content from public.messages where user_id = %s and role = 'user'"
        " order by created_at",
        user.id,
    )
    return [r[0] for r in rows]


def assert_error_json(response: httpx.Response, status: int, code: str | None = None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error", "userMessage", "code"}
    assert body["error"] and body["userMessage"] and body["code"]
    assert "Traceback" not in response.text
    if code is not None:
        assert body["code"] == code


def assert_streamed_done(response: httpx.Response) -> None:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.text.rstrip().splitlines()[-1].startswith('data: {"type":"done"')


def port_of(stack: ChatStack) -> int:
    return int(stack.url.rsplit(":", 1)[1])


def raw_request(
    stack: ChatStack,
    head: str,
    body: bytes = b"",
    *,
    read_for: float = 5.0,
    close_after_send: bool = False,
) -> bytes:
    """Send bytes no well-behaved client library would, and read what comes back until EOF."""
    with socket.create_connection(("127.0.0.1", port_of(stack)), timeout=read_for) as sock:
        sock.sendall(head.replace("\n", "\r\n").encode() + body)
        if close_after_send:
            return b""
        received = b""
        deadline = time.monotonic() + read_for
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            received += chunk
        return received


def status_of(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1])


def json_of(raw: bytes) -> dict[str, Any]:
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in head.lower()
    return dict(json.loads(body))


# --- bodies the service refuses -------------------------------------------------------------
CONV = "00000000-0000-0000-0000-00000000c0de"  # replaced by the user's own conversation id

REFUSED_BODIES: list[tuple[str, bytes, dict[str, str], int, str]] = [
    ("nul-escaped", b'{"message":"a\\u0000b","conversationId":"CONV"}', {}, 400, "invalid_request"),
    ("nul-only", b'{"message":"\\u0000","conversationId":"CONV"}', {}, 400, "invalid_request"),
    ("nul-raw-byte", b'{"message":"a\x00b","conversationId":"CONV"}', {}, 400, "invalid_request"),
    (
        "lone-high-surrogate",
        b'{"message":"a\\ud800b","conversationId":"CONV"}',
        {},
        400,
        "invalid_request",
    ),
    (
        "lone-low-surrogate",
        b'{"message":"\\udc00","conversationId":"CONV"}',
        {},
        400,
        "invalid_request",
    ),
    (
        "surrogate-as-utf8-bytes",
        b'{"message":"a\xed\xa0\x80b","conversationId":"CONV"}',
        {},
        400,
        "invalid_request",
    ),
    ("not-utf8", b'{"message":"a\xff\xfeb","conversationId":"CONV"}', {}, 400, "invalid_request"),
    (
        "latin1-bytes-declared-latin1",
        '{"message":"café","conversationId":"CONV"}'.encode("latin-1"),
        {"Content-Type": "application/json; charset=latin-1"},
        400,
        "invalid_request",
    ),
    (
        "utf16",
        '{"message":"hi","conversationId":"CONV"}'.encode("utf-16"),
        {},
        400,
        "invalid_request",
    ),
    (
        "deeply-nested-unknown-field",
        b'{"message":"hi","conversationId":"CONV","x":' + b"[" * 5_000 + b"]" * 5_000 + b"}",
        {},
        400,
        "invalid_request",
    ),
    (
        "number-beyond-double",
        b'{"message":"hi","conversationId":"CONV","n":1e400}',
        {},
        400,
        "invalid_request",
    ),
    ("nan", b'{"message":"hi","conversationId":"CONV","n":NaN}', {}, 400, "invalid_request"),
    ("json-string", json.dumps('{"message":"hi"}').encode(), {}, 400, "invalid_request"),
    ("json-array", b'[{"message":"hi","conversationId":"CONV"}]', {}, 400, "invalid_request"),
    ("json-null", b"null", {}, 400, "invalid_request"),
    ("json-number", b"42", {}, 400, "invalid_request"),
    ("json-true", b"true", {}, 400, "invalid_request"),
    ("message-null", b'{"message":null,"conversationId":"CONV"}', {}, 400, "invalid_request"),
    (  # what the seed's JavaScript trim() removes: Unicode spaces, line separators, BOM
        "message-only-unicode-blanks",
        b'{"message":" \\ufeff\\u3000\\ufeff\\u00a0\\u2028\\ufeff ","conversationId":"CONV"}',
        {},
        400,
        "message_empty",
    ),
    (  # invisible format characters: zero-width space/joiners, word joiner, LRM, soft hyphen
        "message-only-zero-width",
        b'{"message":"\\u200b\\u200c\\u200d\\u2060\\u200e\\u00ad \\u200b","conversationId":"CONV"}',
        {},
        400,
        "message_empty",
    ),
    ("message-object", b'{"message":{},"conversationId":"CONV"}', {}, 400, "invalid_request"),
    ("conversation-null", b'{"message":"hi","conversationId":null}', {}, 400, "invalid_request"),
    (
        "conversation-braces",
        b'{"message":"hi","conversationId":"{CONV}"}',
        {},
        400,
        "invalid_request",
    ),
    (
        "conversation-urn",
        b'{"message":"hi","conversationId":"urn:uuid:CONV"}',
        {},
        400,
        "invalid_request",
    ),
    (
        "conversation-32-hex",
        b'{"message":"hi","conversationId":"HEX32"}',
        {},
        400,
        "invalid_request",
    ),
    (
        "conversation-padded",
        b'{"message":"hi","conversationId":" CONV "}',
        {},
        400,
        "invalid_request",
    ),
    (
        "client-message-id-braces",
        b'{"message":"hi","conversationId":"CONV","clientMessageId":"{CONV}"}',
        {},
        400,
        "invalid_request",
    ),
    (
        "gzip",
        gzip.compress(b'{"message":"hi","conversationId":"CONV"}'),
        {"Content-Encoding": "gzip"},
        415,
        "unsupported_media_type",
    ),
    (
        "deflate",
        zlib.compress(b'{"message":"hi","conversationId":"CONV"}'),
        {"Content-Encoding": "deflate"},
        415,
        "unsupported_media_type",
    ),
    (
        "gzip-of-plain-json-label",
        b'{"message":"hi","conversationId":"CONV"}',
        {"Content-Encoding": "gzip"},
        415,
        "unsupported_media_type",
    ),
    (
        "form-encoded",
        b"message=hi&conversationId=CONV",
        {"Content-Type": "application/x-www-form-urlencoded"},
        415,
        "unsupported_media_type",
    ),
    (
        "multipart",
        b"--b\r\n\r\n--b--",
        {"Content-Type": "multipart/form-data; boundary=b"},
        415,
        "unsupported_media_type",
    ),
]


@pytest.mark.parametrize(
    ("content", "headers", "status", "code"),
    [pytest.param(*case[1:], id=case[0]) for case in REFUSED_BODIES],
)
def test_chat_stream_hostile_body_is_a_4xx_json_error_and_stores_nothing(
    chat_stack: ChatStack, content: bytes, headers: dict[str, str], status: int, code: str
) -> None:
    user = chat_stack.new_user()
    conv = user.conversation()
    content = content.replace(b"HEX32", conv.replace("-", "").encode())
    content = content.replace(b"CONV", conv.encode())

    response = post(chat_stack, content, json_headers(user) | headers)

    assert_error_json(response, status, code)
    assert response.json()["userMessage"] == user_message(code)
    assert user_messages(chat_stack, user) == []


def test_chat_stream_message_one_code_point_over_the_limit_is_400(chat_stack: ChatStack) -> None:
    user = chat_stack.new_user()
    conv = user.conversation()
    limit = chat_stack.settings.max_message_chars
    for text in ("x" * (limit + 1), "😀" * (limit + 1)):
        content = json.dumps({"message": text, "conversationId": conv}, ensure_ascii=False)
        response = post(chat_stack, content.encode(), json_headers(user))
        assert_error_json(response, 400, "message_too_long")
        assert str(limit) in response.json()["error"]
    assert user_messages(chat_stack, user) == []


# --- bodies the service accepts, exactly as sent --------------------------------------------
ROUND_TRIP = [
    ("emoji", "Plan my week 😀👩🏽‍💻🏳️‍🌈"),
    ("rtl-arabic", "ساعدني في التخطيط لأسبوعي"),
    ("rtl-hebrew-with-marks", "\u202bעזור לי\u202c ok \u200f"),
    ("combining", "e\u0301 n\u0303 Z\u0351\u0352\u0353"),
    ("cjk", "帮我计划一下这周"),
    ("line-and-paragraph-separators", "a\u2028b\u2029c\u0085d"),
    ("control-characters", "tab\there\r\nnext\x01\x1f\x7f"),
    ("quotes-and-backslashes", 'say "hi" \\ \\u0000 \\n'),
    ("sse-look-alike", "data: {}\n\n: ping\n\nevent: done\n"),
    ("non-characters", "\ufffe\uffff\U0010ffff"),
]


@pytest.mark.parametrize("ensure_ascii", [False, True], ids=["utf8", "escaped"])
@pytest.mark.parametrize(("text"), [pytest.param(t, id=i) for i, t in ROUND_TRIP])
def test_chat_stream_unicode_message_is_stored_exactly(
    chat_stack: ChatStack, text: str, ensure_ascii: bool
) -> None:
    user = chat_stack.new_user()
    conv = user.conversation()
    message = text + QUICK
    content = json.dumps({"message": message, "conversationId": conv}, ensure_ascii=ensure_ascii)

    assert_streamed_done(post(chat_stack, content.encode(), json_headers(user)))
    assert user_messages(chat_stack, user) == [message]


@pytest.mark.parametrize("unit", ["x", "é", "😀"])
def test_chat_stream_message_exactly_at_the_limit_is_accepted(
    chat_stack: ChatStack, unit: str
) -> None:
    user = chat_stack.new_user()
    conv = user.conversation()
    limit = chat_stack.settings.max_message_chars
    message = QUICK.strip() + " " + unit * (limit - len(QUICK))
    assert len(message) == limit
    # As iOS's JSONSerialization and JavaScript's JSON.stringify send it: UTF-8, not \u escapes.
    content = json.dumps({"message": message, "conversationId": conv}, ensure_ascii=False)

    assert_streamed_done(post(chat_stack, content.encode(), json_headers(user)))
    assert user_messages(chat_stack, user) == [message]


ACCEPTED_BODIES: list[tuple[str, bytes, dict[str, str], str]] = [
    (
        "utf8-bom",
        b"\xef\xbb\xbf" + b'{"message":"bom' + QUICK.encode() + b'","conversationId":"CONV"}',
        {},
        "bom" + QUICK,
    ),
    (
        "duplicate-key-last-wins",
        b'{"message":"first","conversationId":"CONV","message":"second' + QUICK.encode() + b'"}',
        {},
        "second" + QUICK,
    ),
    (
        "unknown-fields-ignored",
        b'{"message":"extra' + QUICK.encode() + b'","conversationId":"CONV","model":"gpt-9",'
        b'"role":"system","user_id":"someone-else","nested":{"a":[1,2,{"b":null}]},'
        b'"deep":' + b"[" * 500 + b"]" * 500 + b',"big":123456789012345678901234567890}',
        {},
        "extra" + QUICK,
    ),
    (
        "client-message-id-null",
        b'{"message":"nullid'
        + QUICK.encode()
        + b'","conversationId":"CONV","clientMessageId":null}',
        {},
        "nullid" + QUICK,
    ),
    (
        "conversation-upper-case",
        b'{"message":"upper' + QUICK.encode() + b'","conversationId":"UPPER"}',
        {},
        "upper" + QUICK,
    ),
    (
        "charset-latin1-ascii-body",
        b'{"message":"latin' + QUICK.encode() + b'","conversationId":"CONV"}',
        {"Content-Type": "application/json; charset=latin-1"},
        "latin" + QUICK,
    ),
    (
        "charset-upper-utf8",
        '{"message":"ünï'.encode() + QUICK.encode() + b'","conversationId":"CONV"}',
        {"Content-Type": "Application/JSON;Charset=UTF-8"},
        "ünï" + QUICK,
    ),
    (
        "vendor-json",
        b'{"message":"vnd' + QUICK.encode() + b'","conversationId":"CONV"}',
        {"Content-Type": "application/vnd.api+json"},
        "vnd" + QUICK,
    ),
    (
        "identity-encoding",
        b'{"message":"identity' + QUICK.encode() + b'","conversationId":"CONV"}',
        {"Content-Encoding": "identity"},
        "identity" + QUICK,
    ),
    (
        "accept-json-still-streams",
        b'{"message":"accept' + QUICK.encode() + b'","conversationId":"CONV"}',
        {"Accept": "application/json"},
        "accept" + QUICK,
    ),
]


@pytest.mark.parametrize(
    ("content", "headers", "stored"),
    [pytest.param(*case[1:], id=case[0]) for case in ACCEPTED_BODIES],
)
def test_chat_stream_unusual_but_valid_body_streams_and_stores_the_message(
    chat_stack: ChatStack, content: bytes, headers: dict[str, str], stored: str
) -> None:
    user = chat_stack.new_user()
    conv = user.conversation()
    content = content.replace(b"UPPER", conv.upper().encode()).replace(b"CONV", conv.encode())

    assert_streamed_done(post(chat_stack, content, json_headers(user) | headers))
    assert user_messages(chat_stack, user) == [stored]


def test_chat_stream_missing_content_type_is_read_as_json(chat_stack: ChatStack) -> None:
    user = chat_stack.new_user()
    conv = user.conversation()
    assert_streamed_done(post(chat_stack, body_for(conv), user.headers()))
    assert user_messages(chat_stack, user) == ["hi" + QUICK]


def test_chat_stream_client_message_id_reused_in_another_conversation_is_a_new_message(
    chat_stack: ChatStack,
) -> None:
    user = chat_stack.new_user()
    first, second = user.conversation(), user.conversation()
    client_id = str(uuid.uuid4())
    for conv in (first, second, first):
        content = body_for(conv, f"in {conv}{QUICK}", clientMessageId=client_id)
        assert_streamed_done(post(chat_stack, content, json_headers(user)))

    rows = chat_stack.rows(
        "select conversation_id::text, content from public.messages"
        " where user_id = %s and role = 'user' and client_message_id = %s",
        user.id,
        client_id,
    )
    assert sorted(rows) == sorted([(first, f"in {first}{QUICK}"), (second, f"in {second}{QUICK}")])


# --- Content-Length that lies, bodies that never end ---------------------------------------
def _head(stack: ChatStack, user: User, framing: str, extra: str = "") -> str:
    return (
        "POST /functions/v1/chat-stream HTTP/1.1\nHost: 127.0.0.1\n"
        f"Authorization: Bearer {user.token}\nContent-Type: application/json\n"
        f"{framing}\n{extra}\n"
    )


def test_chat_stream_content_length_shorter_than_body_reads_only_what_was_declared(
    chat_stack: ChatStack,
) -> None:
    user = chat_stack.new_user()
    conv = user.conversation()
    content = body_for(conv)
    head = _head(chat_stack, user, f"Content-Length: {len(content) - 5}", "Connection: close\n")

    answer = raw_request(chat_stack, head, content)

    assert status_of(answer) == 400
    assert json_of(answer)["code"] == "invalid_request"
    assert user_messages(chat_stack, user) == []


@pytest.mark.parametrize("declared", ["-1", "abc", "1e3", "10, 20"])
def test_chat_stream_malformed_content_length_is_refused_by_the_server(
    chat_stack: ChatStack, declared: str
) -> None:
    user = chat_stack.new_user()
    conv = user.conversation()
    content = body_for(conv)
    answer = raw_request(
        chat_stack, _head(chat_stack, user, f"Content-Length: {declared}"), content
    )
    assert status_of(answer) == 400
    assert user_messages(chat_stack, user) == []


def test_chat_stream_content_length_and_chunked_together_are_refused(
    chat_stack: ChatStack,
) -> None:
    user = chat_stack.new_user()
    head = _head(chat_stack, user, "Content-Length: 4\nTransfer-Encoding: chunked")
    assert status_of(raw_request(chat_stack, head, b"0\r\n\r\n")) == 400


def test_chat_stream_declared_length_over_the_cap_is_413_before_any_body_is_sent(
    chat_stack: ChatStack,
) -> None:
    user = chat_stack.new_user()
    declared = chat_stack.settings.max_body_bytes * 100
    began = time.monotonic()
    answer = raw_request(
        chat_stack,
        _head(chat_stack, user, f"Content-Length: {declared}", "Expect: 100-continue\n"),
        read_for=2.0,
    )
    assert status_of(answer) == 413
    assert json_of(answer)["code"] == "payload_too_large"
    assert b"100 Continue" not in answer
    # The server closes: kept open, it would swallow the client's next request as this body.
    assert b"connection: close" in answer.lower()
    assert time.monotonic() - began < 2.0


@pytest.mark.parametrize("declared", ["9999999999999999999", "18446744073709551615"])
def test_chat_stream_declared_length_past_eighteen_digits_is_413_too_large_not_400_unreadable(
    chat_stack: ChatStack, declared: str
) -> None:
    user = chat_stack.new_user()
    answer = raw_request(
        chat_stack,
        _head(chat_stack, user, f"Content-Length: {declared}", "Expect: 100-continue\n"),
        read_for=2.0,
    )
    assert status_of(answer) == 413
    assert json_of(answer)["code"] == "payload_too_large"
    assert user_messages(chat_stack, user) == []


def test_chat_stream_endless_chunked_body_is_413_while_the_client_is_still_sending(
    chat_stack: ChatStack,
) -> None:
    user = chat_stack.new_user()
    cap = chat_stack.settings.max_body_bytes
    chunk = b" " * 4096
    sent, answer, received = 0, b"", b""
    with socket.create_connection(("127.0.0.1", port_of(chat_stack)), timeout=5) as sock:
        head = _head(chat_stack, user, "Transfer-Encoding: chunked").replace("\n", "\r\n")
        sock.sendall(head.encode() + b'c\r\n{"message":"\r\n')
        sock.setblocking(False)
        deadline = time.monotonic() + 5
        with contextlib.suppress(ConnectionError):  # the server closes once it has answered
            while time.monotonic() < deadline:
                with contextlib.suppress(BlockingIOError):
                    sock.sendall(b"1000\r\n" + chunk + b"\r\n")
                    sent += len(chunk)
                with contextlib.suppress(BlockingIOError):
                    received = sock.recv(65536)
                    if not received:
                        break
                    answer += received
        with contextlib.suppress(ConnectionError, BlockingIOError):
            sock.setblocking(True)
            while received := sock.recv(65536):
                answer += received
    # The answer came while the body was still arriving, long before it could have ended.
    assert status_of(answer) == 413, answer[:200]
    assert json_of(answer)["code"] == "payload_too_large"
    assert sent < cap * 100


@pytest.mark.parametrize("framing", ["chunked", "content-length"])
def test_chat_stream_huge_upload_gets_413_and_the_server_stops_reading(
    chat_stack: ChatStack, framing: str
) -> None:
    """httpx writes the whole body before it reads: the server must hang up, not drain 100 MB."""
    user = chat_stack.new_user()
    total = 100 * 1024 * 1024
    sent = 0

    def upload() -> Iterator[bytes]:
        nonlocal sent
        while sent < total:
            sent += 65536
            yield b" " * 65536

    content: bytes | Iterator[bytes] = upload() if framing == "chunked" else b" " * total
    response = post(chat_stack, content, json_headers(user))

    assert_error_json(response, 413, "payload_too_large")
    assert response.headers["connection"] == "close"
    if framing == "chunked":
        assert sent < total // 10


def test_chat_stream_client_that_hangs_up_mid_body_costs_nothing_and_logs_no_error(
    chat_stack: ChatStack,
) -> None:
    user = chat_stack.new_user()
    conv = user.conversation()
    content = body_for(conv)
    head = _head(chat_stack, user, f"Content-Length: {len(content) + 100}")
    raw_request(chat_stack, head, content, close_after_send=True)

    time.sleep(0.5)  # let the server notice the hang-up
    assert httpx.get(f"{chat_stack.url}/healthz").status_code == 200
    assert user_messages(chat_stack, user) == []


def test_chat_stream_body_that_stops_arriving_is_408_after_the_body_timeout(
    local_stack: LocalStack, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    chat_stack = start_chat_stack(local_stack, tmp_path, body_timeout_seconds=0.5)
    assert chat_stack.server is not None
    request.addfinalizer(chat_stack.server.stop)
    user = chat_stack.new_user()
    conv = user.conversation()
    content = body_for(conv)
    head = _head(chat_stack, user, f"Content-Length: {len(content) + 100}")
    began = time.monotonic()

    answer = raw_request(chat_stack, head, content, read_for=4.0)

    assert status_of(answer) == 408
    assert json_of(answer)["code"] == "request_timeout"
    assert time.monotonic() - began < 3.0  # and the server closed the connection
    assert user_messages(chat_stack, user) == []


def test_chat_stream_expect_100_continue_gets_the_go_ahead_then_streams(
    chat_stack: ChatStack,
) -> None:
    """curl sends `Expect: 100-continue` for larger bodies and waits for the interim answer."""
    user = chat_stack.new_user()
    conv = user.conversation()
    content = body_for(conv, "long " * 1000 + QUICK)
    head = _head(
        chat_stack,
        user,
        f"Content-Length: {len(content)}",
        "Expect: 100-continue\nConnection: close\n",
    )
    with socket.create_connection(("127.0.0.1", port_of(chat_stack)), timeout=5) as sock:
        sock.sendall(head.replace("\n", "\r\n").encode())
        assert sock.recv(1024).startswith(b"HTTP/1.1 100 Continue")
        sock.sendall(content)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert status_of(answer) == 200
    assert b'"type":"done"' in answer


def test_chat_stream_body_trickling_in_byte_by_byte_is_read_whole(chat_stack: ChatStack) -> None:
    user = chat_stack.new_user()
    conv = user.conversation()
    content = body_for(conv, "tröpfchen 😀" + QUICK)
    head = _head(chat_stack, user, f"Content-Length: {len(content)}", "Connection: close\n")
    with socket.create_connection(("127.0.0.1", port_of(chat_stack)), timeout=5) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(head.replace("\n", "\r\n").encode())
        for i in range(len(content)):
            sock.sendall(content[i : i + 1])
            time.sleep(0.001)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert status_of(answer) == 200
    assert user_messages(chat_stack, user) == ["tröpfchen 😀" + QUICK]


# --- headers --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "authorization",
    ["bearer {t}", "BEARER {t}", "Bearer    {t}"],
    ids=["lower-case", "upper-case", "extra-spaces"],
)
def test_chat_stream_bearer_scheme_in_any_case_and_spacing_is_accepted(
    chat_stack: ChatStack, authorization: str
) -> None:
    user = chat_stack.new_user()
    conv = user.conversation()
    headers = json_headers(user) | {"Authorization": authorization.format(t=user.token)}
    assert_streamed_done(post(chat_stack, body_for(conv), headers))


def test_chat_stream_spaces_around_the_header_value_are_accepted(chat_stack: ChatStack) -> None:
    """httpx will not send them; other clients and proxies do (RFC 9110 §5.5 optional space)."""
    user = chat_stack.new_user()
    conv = user.conversation()
    content = body_for(conv)
    head = _head(chat_stack, user, f"Content-Length: {len(content)}", "Connection: close\n")
    head = head.replace(f"Bearer {user.token}", f"   Bearer {user.token}   ")
    answer = raw_request(chat_stack, head, content)
    assert status_of(answer) == 200
    assert b'"type":"done"' in answer


@pytest.mark.parametrize(
    "authorization",
    ["Bearer\t{t}", "Bearer {junk}", "Bearer {t}.{t}", "Bearer {t} {t}", "Token {t}"],
    ids=["tab", "10kb-token", "token-twice-dotted", "two-tokens", "other-scheme"],
)
def test_chat_stream_mangled_authorization_is_401(
    chat_stack: ChatStack, authorization: str
) -> None:
    user = chat_stack.new_user()
    conv = user.conversation()
    value = authorization.format(t=user.token, junk="a" * 10_240)
    response = post(chat_stack, body_for(conv), json_headers(user) | {"Authorization": value})
    assert_error_json(response, 401, "unauthorized")
    assert response.json()["userMessage"] == AUTH_MESSAGE
    assert user_messages(chat_stack, user) == []


def test_chat_stream_non_ascii_bytes_in_the_token_are_401(chat_stack: ChatStack) -> None:
    user = chat_stack.new_user()
    conv = user.conversation()
    for value in ("Bearer tökén".encode(), b"Bearer " + user.token.encode() + b"\xff"):
        headers = [
            (k.encode(), v.encode()) for k, v in json_headers(user).items() if k != "Authorization"
        ]
        response = post(chat_stack, body_for(conv), [*headers, (b"Authorization", value)])
        assert_error_json(response, 401, "unauthorized")
    assert user_messages(chat_stack, user) == []


def test_chat_stream_100kb_authorization_header_is_401_not_a_crash(chat_stack: ChatStack) -> None:
    user = chat_stack.new_user()
    conv = user.conversation()
    headers = json_headers(user) | {"Authorization": "Bearer " + "a" * 100_000}
    assert_error_json(post(chat_stack, body_for(conv), headers), 401, "unauthorized")


@pytest.mark.parametrize("order", ["valid-first", "valid-last", "both-valid"])
def test_chat_stream_two_authorization_headers_are_refused_with_400(
    chat_stack: ChatStack, order: str
) -> None:
    user, other = chat_stack.new_user(), chat_stack.new_user()
    conv = user.conversation()
    mine, junk = f"Bearer {user.token}", "Bearer not.a.token"
    second = {"valid-first": junk, "valid-last": mine, "both-valid": f"Bearer {other.token}"}
    first = junk if order == "valid-last" else mine
    headers = [
        ("apikey", chat_stack.ctx.keys.anon_key),
        ("Content-Type", "application/json"),
        ("Authorization", first),
        ("Authorization", second[order]),
    ]

    response = post(chat_stack, body_for(conv), headers)

    assert_error_json(response, 400, "invalid_request")
    assert "Authorization" in response.json()["error"]
    assert user_messages(chat_stack, user) == []


def test_chat_stream_token_of_a_deleted_user_is_refused_without_storing(
    chat_stack: ChatStack,
) -> None:
    """The token still verifies locally, but the user is gone: Auth says so when the service
    confirms the session (SESSION_CHECK_SECONDS), so it is a 401, and nothing is stored."""
    user = chat_stack.new_user()
    conv = user.conversation()
    chat_stack.rows("delete from auth.users where id = %s returning id", user.id)

    response = post(chat_stack, body_for(conv), json_headers(user))

    assert_error_json(response, 401, "unauthorized")
    assert chat_stack.rows("select count(*) from public.messages where user_id = %s", user.id) == [
        (0,)
    ]


@pytest.mark.parametrize(
    ("sent", "echoed"),
    [
        (["abc-123:x.y_z"], True),
        (["a" * 128], True),
        (["a" * 129], False),
        (["has space"], False),
        (["semi;colon"], False),
        (["ünïcode".encode().decode("latin-1")], False),
        ([""], False),
        (["first", "second"], None),
    ],
    ids=["plain", "128-chars", "129-chars", "space", "semicolon", "non-ascii", "empty", "twice"],
)
def test_chat_stream_request_id_is_echoed_only_when_plain_and_always_exactly_once(
    chat_stack: ChatStack, sent: list[str], echoed: bool | None
) -> None:
    user = chat_stack.new_user()
    conv = user.conversation()
    headers = [(k.encode(), v.encode()) for k, v in json_headers(user).items()] + [
        (b"X-Request-Id", s.encode("latin-1")) for s in sent
    ]
    for content in (body_for(conv), b"{broken"):  # an event stream, then a JSON error
        response = httpx.post(chat_stack.endpoint, content=content, headers=headers, timeout=15)
        ids = response.headers.get_list("x-request-id")
        assert len(ids) == 1
        if echoed is True:
            assert ids == sent
        elif echoed is False:
            assert str(uuid.UUID(ids[0])) == ids[0]
        else:
            assert ids[0] in sent


# --- methods and paths ----------------------------------------------------------------------
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_chat_stream_other_methods_are_405_json_naming_post(
    chat_stack: ChatStack, method: str
) -> None:
    response = httpx.request(method, chat_stack.endpoint, timeout=5)
    assert_error_json(response, 405, "method_not_allowed")
    assert "POST" in response.headers["allow"]


def test_chat_stream_head_is_405_without_a_body(chat_stack: ChatStack) -> None:
    response = httpx.head(chat_stack.endpoint, timeout=5)
    assert response.status_code == 405
    assert response.content == b""


def test_chat_stream_trailing_slash_is_served_like_the_canonical_path(
    chat_stack: ChatStack,
) -> None:
    """Supabase routes `/functions/v1/chat-stream/` to the function too; the seed answered it."""
    user = chat_stack.new_user()
    conv = user.conversation()
    response = httpx.post(
        chat_stack.endpoint + "/", content=body_for(conv), headers=json_headers(user), timeout=15
    )
    assert_streamed_done(response)


@pytest.mark.parametrize(
    "path",
    ["/functions/v1/chat-streams", "/functions/v1/chat-stream/extra", "/functions/v1/", "/x"],
)
def test_unknown_paths_are_404_json(chat_stack: ChatStack, path: str) -> None:
    for method in ("GET", "POST"):
        response = httpx.request(method, chat_stack.url + path, timeout=5)
        assert_error_json(response, 404, "route_not_found")


# --- CORS -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("request_headers", "allowed"),
    [
        ("authorization, content-type, apikey, x-client-info", True),
        ("Authorization,Content-Type", True),
        ("AUTHORIZATION ,  X-REQUEST-ID", True),
        ("", True),
        ("authorization, x-evil", False),
        ("authorization,,content-type", False),
    ],
    ids=[
        "supabase-js",
        "no-spaces",
        "odd-case-and-spaces",
        "none",
        "unlisted-header",
        "empty-item",
    ],
)
def test_chat_stream_preflight_with_odd_request_headers_never_errors(
    chat_stack: ChatStack, request_headers: str, allowed: bool
) -> None:
    headers = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    if request_headers:
        headers["Access-Control-Request-Headers"] = request_headers
    response = httpx.options(chat_stack.endpoint, headers=headers, timeout=5)
    if allowed:
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] in ("*", "https://app.example")
        assert "POST" in response.headers["access-control-allow-methods"]
    else:
        assert response.status_code == 400  # the browser will not send the request


def test_chat_stream_options_without_preflight_headers_is_405_json(chat_stack: ChatStack) -> None:
    assert_error_json(httpx.options(chat_stack.endpoint, timeout=5), 405, "method_not_allowed")


@pytest.fixture(scope="module")
def cors_stack(
    local_stack: LocalStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ChatStack]:
    stack = start_chat_stack(
        local_stack, tmp_path_factory.mktemp("cors-outbox"), cors_origins=["https://app.example"]
    )
    yield stack
    assert stack.server is not None
    stack.server.stop()


def test_chat_stream_configured_origins_are_echoed_and_others_get_no_cors_grant(
    cors_stack: ChatStack,
) -> None:
    user = cors_stack.new_user()
    conv = user.conversation()
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }

    good = httpx.options(cors_stack.endpoint, headers=preflight | {"Origin": "https://app.example"})
    assert good.status_code == 200
    assert good.headers["access-control-allow-origin"] == "https://app.example"
    answer = post(
        cors_stack, body_for(conv), json_headers(user) | {"Origin": "https://app.example"}
    )
    assert_streamed_done(answer)
    assert answer.headers["access-control-allow-origin"] == "https://app.example"
    assert "origin" in answer.headers["vary"].lower()
    assert "x-request-id" in answer.headers["access-control-expose-headers"]

    for origin in ("https://evil.example", "https://app.example.evil.example", "null"):
        bad = httpx.options(cors_stack.endpoint, headers=preflight | {"Origin": origin})
        assert bad.status_code == 400
        assert "access-control-allow-origin" not in bad.headers
        refused = post(cors_stack, b"{", json_headers(user) | {"Origin": origin})
        assert_error_json(refused, 400)
        assert "access-control-allow-origin" not in refused.headers


# --- health, readiness, metrics -------------------------------------------------------------
@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
def test_ops_routes_answer_get_and_head_and_refuse_writes_with_json(
    chat_stack: ChatStack, path: str
) -> None:
    url = chat_stack.url + path
    got = httpx.get(url, params={"verbose": "1", "x": "\u2028"}, timeout=5)
    assert got.status_code == 200
    if path == "/metrics":
        assert got.headers["content-type"].startswith("text/plain")
        assert "chat_requests_total" in got.text
    else:
        assert got.json()["status"] in ("ok", "ready")

    head = httpx.head(url, timeout=5)
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"]

    for method in ("POST", "PUT", "DELETE"):
        assert_error_json(httpx.request(method, url, content=b"{}", timeout=5), 405)
