"""What an attacker holds: their access token, the anon key and HTTP to the Data API (as curl).

Also what the tests measure the outcome with: the LLM stand-in's ledger (what the provider billed)
against the usage rows the database stored, read as the superuser.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import httpx
from httpx_sse import connect_sse
from supabase.lib.client_options import SyncClientOptions

from app.core.domain import Usage
from app.core.pricing import Pricer
from supabase import Client, create_client
from tests.support.chat_stack import ChatStack, User

FORGED_MAC = "0" * 64
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
REFUSED = (401, 403)


def rest(
    stack: ChatStack,
    user: User,
    method: str,
    path: str,
    *,
    body: object = None,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """One Data API request as `user`: `Authorization: Bearer <token>` and `apikey: <anon>`."""
    hdrs = user.headers() | {"Content-Type": "application/json", "Prefer": "return=representation"}
    hdrs |= headers or {}
    content = None if body is None else json.dumps(body).encode()
    return httpx.request(
        method,
        f"{stack.url}/rest/v1/{path}",
        content=content,
        params=params,
        headers=hdrs,
        timeout=30,
    )


@contextmanager
def user_client(stack: ChatStack, user: User) -> Iterator[Client]:
    """The official supabase-py client, signed in as `user` (the iOS app does the same)."""
    with httpx.Client(timeout=30) as http:
        options = SyncClientOptions(
            headers={"Authorization": f"Bearer {user.token}"},
            auto_refresh_token=False,
            persist_session=False,
            httpx_client=http,
        )
        yield create_client(stack.url, stack.ctx.keys.anon_key, options)


@contextmanager
def service_client(stack: ChatStack) -> Iterator[Client]:
    """supabase-py with the service role key, as the service's sweeper calls `chat_sweep`."""
    with httpx.Client(timeout=30) as http:
        options = SyncClientOptions(
            auto_refresh_token=False, persist_session=False, httpx_client=http
        )
        yield create_client(stack.url, stack.ctx.keys.service_role_key, options)


def readable_text(stack: ChatStack, user: User) -> str:
    """Everything the user can read about their chats through the Data API, as one text."""
    parts = []
    for table in ("conversations", "messages", "usage_logs", "user_limits", "users"):
        response = rest(stack, user, "GET", table, params={"select": "*"})
        assert response.status_code == 200, response.text
        parts.append(response.text)
    return "\n".join(parts)


def visible_ids(stack: ChatStack, user: User, *extra: str) -> set[str]:
    """Every id the user can see: their rows' ids, their conversations, messages, usage."""
    return set(UUID.findall(readable_text(stack, user) + "\n".join(extra)))


def finish_record(user_id: str, turn_id: str, conversation_id: str) -> str:
    """A `chat_finish` record an attacker would like stored: the turn settled at $0."""
    return json.dumps(
        {
            "v": 1,
            "user_id": user_id,
            "turn_id": turn_id,
            "conversation_id": conversation_id,
            "message": None,
            "usage": [
                {
                    "attempt_id": turn_id,
                    "provider": "anthropic",
                    "model": "claude-sonnet-4-5",
                    "tokens_in": 0,
                    "tokens_out": 0,
                    "cost_usd": "0",
                    "status": "completed",
                }
            ],
        }
    )


def forged_usage_row(user_id: str, request_id: str, conversation_id: str | None) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "turn_id": request_id,
        "attempt_id": request_id,
        "user_id": user_id,
        "conversation_id": conversation_id,
        "provider": "anthropic",
        "model": "claude-sonnet-4-5",
        "tokens_in": 2_000_000_000,
        "tokens_out": 2_000_000_000,
        "cost_usd": 0,
        "status": "completed",
    }


def estimate_tokens(text: str) -> int:
    """Tokens as the service and the database estimate them (an upper bound): UTF-8 bytes."""
    return len(text.encode())


def reserve_for(stack: ChatStack, message: str) -> Decimal:
    """The worst case the service reserves for one turn (full history window, all output)."""
    s = stack.settings
    bound = s.history_token_budget + estimate_tokens(s.system_prompt) + estimate_tokens(message)
    return Pricer(s).worst_case_cost(s.llm_provider, s.llm_model, bound, s.llm_max_tokens)


def set_limits(stack: ChatStack, user: User, **caps: object) -> None:
    """The user's caps, as the operator sets them (service side; users cannot write them)."""
    columns = ", ".join(caps)
    placeholders = ", ".join(["%s"] * len(caps))
    stack.rows(
        f"insert into public.user_limits (user_id, {columns}) values (%s, {placeholders})"  # noqa: S608 - test-owned names
        " returning user_id",
        user.id,
        *caps.values(),
    )


def streaming_turns(stack: ChatStack, user: User) -> list[str]:
    rows = stack.rows(
        "select turn_id::text from private.turns where user_id = %s and state = 'streaming'"
        " order by created_at",
        user.id,
    )
    return [r[0] for r in rows]


# --- money ----------------------------------------------------------------------------------------
def billed(entries: Iterable[dict[str, Any]]) -> list[tuple[int, int, int, int]]:
    """What the provider billed, per request: (input, output, cache read, cache write)."""
    return sorted(
        (
            e["input_tokens"],
            e["output_tokens"],
            e["cache_read_tokens"],
            e["cache_write_tokens"],
        )
        for e in entries
    )


def settled_ledger(
    stack: ChatStack, since: float, n: int, *, deadline: float = 30.0
) -> list[dict[str, Any]]:
    """The ledger's entries since `since` once `n` of them are closed (the stand-in closes an
    entry when its stream ends, just after the client has read it)."""
    end = time.monotonic() + deadline
    while True:
        entries = stack.ledger(since)
        if len(entries) >= n and all(e["closed_at"] is not None for e in entries):
            return entries
        assert time.monotonic() < end, f"ledger never settled: {entries}"
        time.sleep(0.05)


def stored_rows(stack: ChatStack, user: User, n: int, *, deadline: float = 30.0) -> None:
    """Wait until the user has `n` usage rows (a turn whose client left is written just after)."""
    end = time.monotonic() + deadline
    while True:
        ((count,),) = stack.rows(
            "select count(*) from public.usage_logs where user_id = %s", user.id
        )
        if count >= n:
            return
        assert time.monotonic() < end, f"only {count} of {n} usage rows were stored"
        time.sleep(0.05)


def assert_stored_as_billed(
    stack: ChatStack, user: User, entries: list[dict[str, Any]], *, statuses: set[str] | None = None
) -> Decimal:
    """The user's stored usage is what the provider billed, each row priced right: exactly, for
    every reported counter; at least, for the output of an answer cut off before the provider
    reported it, which is estimated as an upper bound (UTF-8 bytes: the stand-in's tokens are
    at most four ASCII characters, so at most four times what it billed).

    Returns the total stored cost.
    """
    rows = stack.rows(
        "select provider, model, tokens_in, tokens_out, cache_read_tokens, cache_write_tokens,"
        " cost_usd, status, estimated from public.usage_logs where user_id = %s order by id",
        user.id,
    )
    stored = sorted((r[2], r[4], r[5], r[3], r[8]) for r in rows)
    expected = sorted((i, r, w, o) for i, o, r, w in billed(entries))
    assert [s[:3] for s in stored] == [e[:3] for e in expected], (rows, entries)
    for (*_, out, estimated), (*_, billed_out) in zip(stored, expected, strict=True):
        if estimated:
            assert billed_out <= out <= 4 * billed_out, (rows, entries)
        else:
            assert out == billed_out, (rows, entries)
    pricer = Pricer(stack.settings)
    total = Decimal(0)
    for provider, model, t_in, t_out, c_read, c_write, cost, status, estimated in rows:
        usage = Usage(
            input_tokens=t_in,
            output_tokens=t_out,
            cache_read_tokens=c_read,
            cache_write_tokens=c_write,
        )
        assert cost == pricer.price(provider, model, usage).cost_usd
        assert cost > 0
        assert status in (statuses or {"completed"})
        assert estimated is (status != "completed")  # a cut-off answer's output is counted
        total += cost
    return total


# --- streams in the background ------------------------------------------------------------------
class BackgroundStream:
    """A chat turn read by a real SSE client on its own thread, so the test can act meanwhile."""

    def __init__(
        self,
        endpoint: str,
        user: User,
        body: dict[str, Any],
        *,
        barrier: threading.Barrier | None = None,
        on_token: Callable[[], None] | None = None,
    ) -> None:
        self.endpoint, self.user, self.body = endpoint, user, body
        self.started = threading.Event()  # the first token arrived, or the request ended
        self._leave = threading.Event()
        self.finished = threading.Event()
        self.status: int | None = None
        self.headers: httpx.Headers | None = None
        self.events: list[dict[str, Any]] = []
        self.json: Any = None
        self.error: BaseException | None = None
        self._barrier = barrier
        self._on_token = on_token
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        headers = self.user.headers() | {"Content-Type": "application/json"}
        try:
            if self._barrier is not None:
                self._barrier.wait(30)
            with (
                httpx.Client(timeout=120) as client,
                connect_sse(
                    client, "POST", self.endpoint, content=json.dumps(self.body), headers=headers
                ) as source,
            ):
                response = source.response
                self.status, self.headers = response.status_code, response.headers
                if not response.headers.get("content-type", "").startswith("text/event-stream"):
                    response.read()
                    self.json = response.json()
                    return
                for sse in source.iter_sse():
                    if self._leave.is_set():
                        break  # the client leaves: the connection closes mid-answer
                    event = json.loads(sse.data)
                    self.events.append(event)
                    if event.get("type") == "token":
                        self.started.set()
                        if self._on_token is not None:
                            self._on_token()
        except (httpx.HTTPError, threading.BrokenBarrierError) as exc:
            self.error = exc
        finally:
            self.started.set()
            self.finished.set()

    def wait_streaming(self, timeout: float = 60) -> None:
        assert self.started.wait(timeout), "the stream never started"
        assert self.status == 200 and self.events, (self.status, self.json, self.error)

    def leave(self) -> None:
        """Hang up at the next event, as a user closing the app mid-answer."""
        self._leave.set()
        self.join()

    def join(self, timeout: float = 120) -> None:
        assert self.finished.wait(timeout), "the stream never ended"
        self._thread.join(5)

    @property
    def last(self) -> dict[str, Any]:
        return self.events[-1]

    def seen(self) -> str:
        """Everything this stream showed the client so far (headers and events), as text."""
        return json.dumps([dict(self.headers or {}), self.events, self.json])
