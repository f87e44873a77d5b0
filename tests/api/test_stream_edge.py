"""Clients and answers that strain the event stream itself, over real HTTP on 127.0.0.1.

Two stacks: the shared one with the LLM stand-in (`chat_stack`), and one whose provider plays a
script chosen by the message (`script=<name>`), to send what the stand-in never does: tokens that
look like SSE framing, a NUL, megabytes of text. Everything else (the service, PostgREST,
PostgreSQL, the socket) is real.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from app.core.domain import CompletionRequest, ProviderEvent, TextDelta, Usage, UsageReport
from app.local.context import StackContext
from app.local.postgres import free_port
from app.local.server import ServerThread
from app.local.stack import LocalStack, build_app
from app.main import Overrides, create_app
from app.user_messages import user_message
from tests.api.test_hostile_clients import no_server_errors  # noqa: F401 - autouse fixture
from tests.support.chat_stack import ChatStack, StreamResult, User, chat_settings, stream

ODD_TOKENS = [
    "a\nb",
    "\r",
    "\r\n",
    '\n\ndata: {"type":"done"}\n\n',
    "event: error\n",
    ": ping",
    'q"uo\\te',
    "\u2028",
    "\u2029",
    "\x85",
    "é😀",
    "\u202eRTL",
]
BIG_TOKEN = "x" * 1000
SCRIPTS: dict[str, list[str]] = {
    "odd": ODD_TOKENS,
    "nul": ["before", "\x00", " after\x00"],
    "big": [BIG_TOKEN] * 4000,  # 4 MB: more than every socket buffer between the two ends
    "short": ["Hello", " there"],
    "slow": ["tick"] * 30,
}
DELAYS = {"slow": 0.05}
_SCRIPT = re.compile(r"script=(\w+)")


@dataclass
class ScriptedProvider:
    """A Provider that plays the script named in the last user message, and records requests."""

    name: str = "anthropic"
    requests: list[CompletionRequest] = field(default_factory=list)
    yielded: int = 0

    def stream(
        self, request: CompletionRequest
    ) -> contextlib.AbstractAsyncContextManager[AsyncIterator[ProviderEvent]]:
        self.requests.append(request)
        match = _SCRIPT.search(request.messages[-1].content)
        name = match.group(1) if match else "short"
        return self._play(SCRIPTS[name], DELAYS.get(name, 0.0))

    @contextlib.asynccontextmanager
    async def _play(
        self, tokens: list[str], delay: float
    ) -> AsyncIterator[AsyncIterator[ProviderEvent]]:
        async def events() -> AsyncIterator[ProviderEvent]:
            yield UsageReport(Usage(input_tokens=20))
            for token in tokens:
                await asyncio.sleep(delay)
                self.yielded += 1
                yield TextDelta(token)
            yield UsageReport(Usage(input_tokens=20, output_tokens=len(tokens)))

        played = events()
        try:
            yield played
        finally:
            await played.aclose()  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def scripted(
    local_stack: LocalStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ChatStack, ScriptedProvider]]:
    provider = ScriptedProvider()
    port = free_port()
    ctx = StackContext(
        keys=local_stack.keys, api_url=f"http://127.0.0.1:{port}", db_port=local_stack.db_port
    )
    # Twenty turns arrive at once from 127.0.0.1: on a busy machine more than the per-client
    # bound of pending (not yet verified) requests are in flight together and the ninth is 429.
    # That bound has its own tests (test_admission); here it would only make the order tests flaky.
    settings = chat_settings(
        ctx, tmp_path_factory.mktemp("edge-outbox"), max_pending_requests_per_client=0
    )
    service = create_app(settings, overrides=Overrides(providers=[(provider, settings.llm_model)]))
    server = ServerThread(build_app(ctx, functions_app=service), port).start()
    yield ChatStack(ctx.api_url, ctx, settings, local_stack.pg.superuser_dsn, server), provider
    server.stop()


def ask(text: str, conversation_id: str, **extra: object) -> dict[str, object]:
    return {"message": text, "conversationId": conversation_id, **extra}


def rows_of(stack: ChatStack, conversation_id: str) -> list[tuple[object, ...]]:
    return stack.rows(
        "select m.role, m.status, m.content, (select count(*) from public.usage_logs u"
        "  where u.message_id = m.id) from public.messages m"
        " where m.conversation_id = %s order by m.created_at, m.id",
        conversation_id,
    )


def wait_for(condition: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def blocks(raw: bytes) -> list[bytes]:
    """The body cut at blank lines; the last cut must be empty (the stream ends on a boundary).

    Ping comment lines come out as blocks of their own. Every event has exactly one
    `id: <turn_id>:<seq>` line, seq counting from 1 within one turn; it is checked and removed.
    """
    parts = raw.split(b"\n\n")
    assert parts[-1] == b"", raw[-200:]
    out: list[bytes] = []
    turn, seq = None, 0
    for part in parts[:-1]:
        lines = part.split(b"\n")
        out += [line for line in lines if line.startswith(b":")]
        rest = [line for line in lines if not line.startswith(b":")]
        if not rest:
            continue
        assert len(rest) == 2 and rest[0].startswith(b"id: "), part
        event_turn, _, n = rest[0][len(b"id: ") :].rpartition(b":")
        turn = turn or event_turn
        seq += 1
        assert (event_turn, int(n)) == (turn, seq), part
        out.append(rest[1])
    return out


# --- the bytes on the wire ------------------------------------------------------------------
def test_sse_body_is_exactly_data_lines_of_compact_json_and_comment_pings(
    chat_stack: ChatStack,
) -> None:
    user = chat_stack.new_user()
    conv = user.conversation()
    headers = user.headers() | {"Content-Type": "application/json", "Origin": "https://a.example"}
    content = json.dumps(ask("pace me [[standin tokens=4 delay_ms=450]]", conv)).encode()

    with httpx.stream("POST", chat_stack.endpoint, content=content, headers=headers) as answer:
        raw = b"".join(answer.iter_raw())

    assert answer.status_code == 200
    assert answer.headers["content-type"].split(";")[0] == "text/event-stream"
    assert answer.headers["cache-control"] == "no-cache"
    assert answer.headers["connection"] == "keep-alive"
    assert answer.headers["x-accel-buffering"] == "no"
    assert answer.headers["access-control-allow-origin"] in ("*", "https://a.example")
    assert "content-length" not in answer.headers and "content-encoding" not in answer.headers
    events, pings = [], 0
    for block in blocks(raw):
        assert b"\n" not in block and b"\r" not in block, block
        if block.startswith(b":"):
            pings += 1
            continue
        assert block.startswith(b"data: "), block
        data = block[len(b"data: ") :]
        event = json.loads(data)
        assert data == json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()
        events.append(event)
    assert pings >= 1  # the stand-in paused longer than the heartbeat
    assert [e["type"] for e in events] == ["token"] * 4 + ["done"]


def test_tokens_that_look_like_framing_arrive_intact_and_are_stored_exactly(
    scripted: tuple[ChatStack, ScriptedProvider],
) -> None:
    stack, _ = scripted
    user = stack.new_user()
    conv = user.conversation()
    headers = user.headers() | {"Content-Type": "application/json"}
    content = json.dumps(ask("script=odd", conv)).encode()

    with httpx.stream("POST", stack.endpoint, content=content, headers=headers) as answer:
        raw = b"".join(answer.iter_raw())
    parsed = stream(stack, user, ask("script=odd", conv))

    data = [b[len(b"data: ") :] for b in blocks(raw) if not b.startswith(b":")]
    assert [json.loads(d).get("content") for d in data[:-1]] == ODD_TOKENS
    assert parsed.tokens == ODD_TOKENS  # and httpx-sse sees the same events
    assert parsed.last["type"] == "done"
    stored = [r for r in rows_of(stack, conv) if r[0] == "assistant"]
    assert [r[2] for r in stored] == ["".join(ODD_TOKENS)] * 2


def test_nul_from_the_provider_is_relayed_but_the_answer_and_usage_are_still_stored(
    scripted: tuple[ChatStack, ScriptedProvider],
) -> None:
    """PostgreSQL text cannot hold NUL: it used to fail every write and clog the outbox."""
    stack, _ = scripted
    user = stack.new_user()
    conv = user.conversation()

    result = stream(stack, user, ask("script=nul", conv))

    assert result.tokens == SCRIPTS["nul"]
    assert result.last["type"] == "done"
    assert rows_of(stack, conv)[-1] == ("assistant", "completed", "before after", 1)
    assert list(stack.settings.outbox_dir.glob("*.json")) == []


def test_user_deleted_mid_stream_does_not_clog_the_outbox(
    scripted: tuple[ChatStack, ScriptedProvider],
    no_server_errors: list[logging.LogRecord],  # noqa: F811 - the imported fixture
) -> None:
    """The token stays valid until it expires, but the final write can never succeed: that
    record must be set aside (outbox `dead/`), not retried ahead of every later one forever."""
    stack, _ = scripted
    user = stack.new_user()
    conv = user.conversation()
    outbox = stack.settings.outbox_dir
    results: list[object] = []
    streaming = threading.Thread(
        target=lambda: results.append(stream(stack, user, ask("script=slow", conv)))
    )
    streaming.start()
    time.sleep(0.4)
    stack.rows("delete from auth.users where id = %s returning id", user.id)
    streaming.join(30)

    assert results[0].last["type"] == "done"  # type: ignore[attr-defined]
    wait_for(lambda: list(outbox.glob("*.json")) == [], timeout=10)
    assert len(list((outbox / "dead").glob("*.json"))) == 1
    (buried,) = no_server_errors  # the outbox says so, at ERROR, for a human to look at
    assert "moved to" in buried.getMessage()
    no_server_errors.clear()


# --- clients that read slowly or leave ------------------------------------------------------
def _send_chat(sock: socket.socket, user: User, body: dict[str, object]) -> None:
    content = json.dumps(body).encode()
    head = (
        "POST /functions/v1/chat-stream HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {user.token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(content)}\r\n\r\n"
    )
    sock.sendall(head.encode() + content)


def _read_to_end(sock: socket.socket, timeout: float) -> bytes:
    sock.settimeout(timeout)
    received = b""
    while not received.endswith(b"\r\n0\r\n\r\n"):
        chunk = sock.recv(1 << 16)
        if not chunk:
            break
        received += chunk
    return received


@pytest.mark.slow
def test_client_that_stops_reading_holds_the_upstream_not_the_server_and_still_gets_everything(
    scripted: tuple[ChatStack, ScriptedProvider],
) -> None:
    """Backpressure: the relay waits for the client; a slow reader is not an idle provider."""
    stack, provider = scripted
    user, other = stack.new_user(), stack.new_user()
    conv = user.conversation()
    total = len(SCRIPTS["big"])
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", int(stack.url.rsplit(":", 1)[1])))
        before = provider.yielded
        _send_chat(sock, user, ask("script=big", conv))
        time.sleep(stack.settings.llm_idle_timeout * 3)  # read nothing for three idle timeouts

        assert provider.yielded - before < total  # the server did not buffer the whole answer
        meanwhile = stream(stack, other, ask("script=short", other.conversation()))
        assert meanwhile.last["type"] == "done"  # nor did the slow reader block anyone else

        raw = _read_to_end(sock, timeout=30)

    assert b'"type":"done"' in raw[-400:], raw[-400:]
    assert b'"type":"error"' not in raw
    assert rows_of(stack, conv)[-1] == ("assistant", "completed", BIG_TOKEN * total, 1)


@pytest.mark.parametrize("leave", ["before-the-head", "after-the-head", "between-tokens"])
def test_client_that_leaves_at_any_moment_stops_the_upstream_and_leaves_consistent_rows(
    chat_stack: ChatStack, leave: str
) -> None:
    user = chat_stack.new_user()
    conv = user.conversation()
    since = time.monotonic()
    with socket.create_connection(("127.0.0.1", int(chat_stack.url.rsplit(":", 1)[1]))) as sock:
        _send_chat(sock, user, ask("bye [[standin tokens=200 delay_ms=30]]", conv))
        sock.settimeout(10)
        if leave != "before-the-head":
            seen = sock.recv(4096)
            while leave == "between-tokens" and seen.count(b'"type":"token"') < 3:
                seen += sock.recv(4096)
        left = time.monotonic()

    def upstream_closed() -> bool:
        entries = chat_stack.ledger(since)
        return all(e["closed_at"] is not None for e in entries) and (
            leave != "between-tokens" or len(entries) == 1  # else it may not have begun
        )

    wait_for(upstream_closed)
    for entry in chat_stack.ledger(since):
        assert entry["outcome"] == "client_disconnected"
        assert entry["closed_at"] - left < 1.0
    wait_for(lambda: all(r[0] == "user" or r[3] == 1 for r in rows_of(chat_stack, conv)))
    rows = rows_of(chat_stack, conv)
    assert [r[0] for r in rows].count("user") <= 1
    for role, status, content, usage in rows:
        if role == "assistant":  # a partial answer always comes with its usage row
            assert (status, usage) == ("partial", 1) and content
    if leave == "between-tokens":
        assert [r[0] for r in rows] == ["user", "assistant"]
    assert httpx.get(f"{chat_stack.url}/healthz").status_code == 200


# --- many requests on one conversation ------------------------------------------------------
@pytest.mark.slow
def test_twenty_parallel_turns_on_one_conversation_are_all_answered_and_stored_in_order(
    scripted: tuple[ChatStack, ScriptedProvider],
) -> None:
    stack, provider = scripted
    user = stack.new_user()
    conv = user.conversation()
    texts = [f"parallel {i} script=short" for i in range(20)]
    results: dict[int, object] = {}
    first = len(provider.requests)

    def run(i: int) -> None:
        results[i] = stream(stack, user, ask(texts[i], conv))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert sorted(results) == list(range(20))
    assert all(r.last["type"] == "done" for r in results.values())  # type: ignore[attr-defined]
    rows = rows_of(stack, conv)
    assert sorted(str(r[2]) for r in rows if r[0] == "user") == sorted(texts)
    assert [r[1:] for r in rows if r[0] == "assistant"] == [("completed", "Hello there", 1)] * 20
    stored_order = [r[2] for r in rows]
    for request in provider.requests[first:]:
        sent = [m.content for m in request.messages]
        assert sent[-1] in texts  # each turn ends with its own message...
        positions = [stored_order.index(c) for c in sent if c in texts]
        assert positions == sorted(positions)  # ...after the others it saw, in stored order
    follow_up = stream(stack, user, ask("and now? script=short", conv))
    assert follow_up.last["type"] == "done"
    last_request = provider.requests[-1].messages
    assert last_request[-1].content == "and now? script=short"
    assert len([m for m in last_request if m.role == "user"]) == 21


def test_replaying_a_request_while_it_still_streams_is_409_and_answered_once(
    chat_stack: ChatStack,
) -> None:
    """One answer per clientMessageId: a retry while the first still streams is refused with 409
    and the warm message; the model is called and billed once, the user's message stored once."""
    user = chat_stack.new_user()
    conv = user.conversation()
    body = ask("once [[standin tokens=12 delay_ms=60]]", conv, clientMessageId=str(uuid.uuid4()))
    since = time.monotonic()
    results: list[StreamResult] = []
    first = threading.Thread(target=lambda: results.append(stream(chat_stack, user, body)))
    first.start()
    wait_for(lambda: len(chat_stack.ledger(since)) >= 1)  # the model is answering: in flight
    replay = httpx.post(chat_stack.endpoint, json=body, headers=user.headers(), timeout=10)
    first.join(30)

    assert replay.status_code == 409
    assert replay.json()["code"] == "turn_in_flight"
    assert replay.json()["userMessage"] == user_message("turn_in_flight")
    (original,) = results
    assert original.last["type"] == "done"
    rows = rows_of(chat_stack, conv)
    assert [r[0] for r in rows].count("user") == 1
    answers = [r[1:] for r in rows if r[0] == "assistant"]
    assert answers == [("completed", "".join(original.tokens), 1)]
