"""Everything a client sends outside the typed body is parsed strictly (app/api/headers.py):
ASCII digits only, bounded, range-checked before it reaches the database, 400 otherwise. And no
bytes in any header or field, on the chat endpoint or the resume path, make the service answer
5xx: a hypothesis fuzz over real HTTP with a fixed example budget, so it runs in `make test`.
"""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.api.headers import MAX_SEQ, last_event_seq
from app.errors import BadRequest
from app.local.stack import LocalStack
from tests.support.chat_stack import ChatStack, User, start_chat_stack, stream

EXAMPLES = 60
# Any bytes but CR and LF (which would end the header): sent raw, so the server's own HTTP parser
# sees NULs, control characters and 8-bit bytes as a hostile client sends them.
HEADER_BYTES = st.binary(max_size=80).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))


def raw_request(
    stack: ChatStack, method: str, path: bytes, headers: dict[str, bytes], body: bytes = b""
) -> tuple[int, bytes]:
    """One HTTP/1.1 request written byte for byte on a socket; (status, whole response)."""
    url = httpx.URL(stack.url)
    head = method.encode() + b" " + path + b" HTTP/1.1\r\nHost: " + url.netloc + b"\r\n"
    for name, value in headers.items():
        head += name.encode() + b": " + value + b"\r\n"
    head += b"Connection: close\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n"
    with socket.create_connection((url.host, url.port or 80), timeout=30) as sock:
        sock.sendall(head + body)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    response = b"".join(chunks)
    return int(response.split(b" ", 2)[1]), response


@pytest.fixture(scope="module")
def fuzzed(
    local_stack: LocalStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ChatStack]:
    """The service with admission's lag bound off: on a shared CI machine the loop may run late,
    and its 503 `overloaded` (correct there) would hide a 5xx the fuzz is looking for."""
    stack = start_chat_stack(
        local_stack, tmp_path_factory.mktemp("outbox-fuzz"), admission_max_lag_ms=0
    )
    yield stack
    assert stack.server is not None
    stack.server.stop()


def answered_turn(stack: ChatStack, user: User) -> str:
    conv = user.conversation()
    done = stream(stack, user, {"message": "hi [[standin tokens=2]]", "conversationId": conv})
    assert done.last["type"] == "done"
    return str(done.last["turnId"])


def resume(stack: ChatStack, path: str, headers: dict[str, bytes | str]) -> httpx.Response:
    url = f"{stack.endpoint}/turns/{path}"
    with httpx.Client(timeout=30) as client, client.stream("GET", url, headers=headers) as r:
        r.read()
        return r


@pytest.mark.parametrize(
    ("seq", "why"),
    [
        (b"\xb2", "Latin-1 superscript two: isdigit() is true, int() refuses it"),
        ("\u0661\u0662".encode(), "Arabic-Indic digits (as UTF-8 bytes)"),
        (b"99999999999", "over int4 in the database"),
        (b"1" * 40, "unbounded length"),
        (b"-1", "negative"),
        (b"+1", "a sign"),
        (b"1_0", "an underscore int() accepts"),
        (b"", "nothing after the colon"),
    ],
)
def test_resume_with_a_bad_last_event_seq_is_400_with_a_clear_error(
    chat_stack: ChatStack, seq: bytes, why: str
) -> None:
    user = chat_stack.new_user()
    turn_id = answered_turn(chat_stack, user)
    headers: dict[str, bytes | str] = {
        "Authorization": f"Bearer {user.token}",
        "Last-Event-ID": turn_id.encode() + b":" + seq,
    }

    response = resume(chat_stack, turn_id, headers)

    assert response.status_code == 400, (why, response.status_code, response.text)
    assert "Last-Event-ID" in response.json()["error"]


def test_resume_with_the_largest_seq_is_accepted(chat_stack: ChatStack) -> None:
    user = chat_stack.new_user()
    turn_id = answered_turn(chat_stack, user)
    headers: dict[str, bytes | str] = {
        "Authorization": f"Bearer {user.token}",
        "Last-Event-ID": f"{turn_id}:{MAX_SEQ}",
    }

    response = resume(chat_stack, turn_id, headers)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")


@pytest.mark.parametrize(
    "value", ["", "   ", "x", f"{uuid.uuid4()}:1", "{id}", "{id}:", "{id}:1:2", "{ID}:1"]
)
def test_last_event_seq_refuses_anything_but_this_turns_id_and_digits(value: str) -> None:
    turn_id = str(uuid.uuid4())
    value = value.replace("{id}", turn_id).replace("{ID}", "{" + turn_id + "}")
    if not value.strip():
        assert last_event_seq(value, turn_id) == 0
        return
    with pytest.raises(BadRequest):
        last_event_seq(value, turn_id)


@given(st.text(max_size=30))
def test_last_event_seq_is_a_number_in_range_or_a_bad_request(seq: str) -> None:
    turn_id = str(uuid.uuid4())
    try:
        n = last_event_seq(f"{turn_id}:{seq}", turn_id)
    except BadRequest:
        return
    assert 0 <= n <= MAX_SEQ and seq.strip().isascii()


@pytest.mark.slow
def test_random_bytes_in_the_resume_paths_headers_never_get_a_5xx(fuzzed: ChatStack) -> None:
    chat_stack = fuzzed
    user = chat_stack.new_user()
    turn_id = answered_turn(chat_stack, user)
    paths = (
        st.just(turn_id)
        | st.just(turn_id.upper())
        | st.text(alphabet="0123456789abcdefABCDEF-{}:%", max_size=40).filter(bool)
    )
    auth = st.just(f"Bearer {user.token}".encode()) | HEADER_BYTES
    # Digits that are not ASCII (Latin-1 superscripts, as the server decodes header bytes), too.
    tricky = st.sampled_from([b"\xb2", b"\xb3", b"\xb9", b"1\xb2", b"99999999999", b"-0"])

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(path=paths, last_event=HEADER_BYTES | tricky, authorization=auth, prefix=st.booleans())
    def fuzz(path: str, last_event: bytes, authorization: bytes, prefix: bool) -> None:
        value = (turn_id.encode() + b":" + last_event) if prefix else last_event
        target = f"/functions/v1/chat-stream/turns/{quote(path, safe='')}".encode()
        status, response = raw_request(
            chat_stack, "GET", target, {"Authorization": authorization, "Last-Event-ID": value}
        )
        assert status < 500, (path, value, response[:500])

    fuzz()


@pytest.mark.slow
def test_random_bytes_in_the_chat_bodys_fields_and_headers_never_get_a_5xx(
    fuzzed: ChatStack,
) -> None:
    chat_stack = fuzzed
    user = chat_stack.new_user()
    conv = user.conversation()
    ids = st.just(conv) | st.uuids().map(str) | st.text(max_size=40) | st.integers() | st.none()
    messages = (
        st.text(max_size=200).map(lambda t: t + " [[standin tokens=1]]")
        | st.binary(max_size=60).map(lambda b: b.decode("latin-1"))
        | st.integers()
        | st.none()
        | st.lists(st.text(max_size=5), max_size=3)
    )
    bodies = st.fixed_dictionaries(
        {}, optional={"message": messages, "conversationId": ids, "clientMessageId": ids}
    ).map(lambda d: json.dumps(d).encode()) | st.binary(max_size=200)
    auth = st.just(f"Bearer {user.token}".encode()) | HEADER_BYTES
    content_types = st.just(b"application/json") | HEADER_BYTES

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(body=bodies, authorization=auth, content_type=content_types, length=HEADER_BYTES)
    def fuzz(body: bytes, authorization: bytes, content_type: bytes, length: bytes) -> None:
        headers = {
            "Authorization": authorization,
            "Content-Type": content_type,
            "apikey": user.stack.ctx.keys.anon_key.encode(),
            "X-Client-Info": length,
        }
        status, response = raw_request(
            chat_stack, "POST", b"/functions/v1/chat-stream", headers, body
        )
        assert status < 500, (body, headers, response[:500])

    fuzz()
