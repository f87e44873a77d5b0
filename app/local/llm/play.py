"""One scripted LLM response as a raw ASGI app: timing, faults, and prompt disconnect detection.

A watcher task waits on `receive()` for `http.disconnect`, so a client that leaves is noticed at
once, even during a delay or a stall (uvicorn's `send` is silent after a disconnect). Faults that
act on the TCP connection itself (refuse, drop) close uvicorn's transport for this request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

import anyio
import orjson
from anyio import CancelScope
from starlette.types import Receive, Scope, Send

from app.local.llm.knobs import STATUS_FAULTS, Knobs
from app.local.llm.ledger import LedgerEntry
from app.local.llm.prompt import ANSWER_TOKENS
from app.local.llm.wire import JSON_HEADERS, OPENAI_STATUS, Wire, anthropic_error, openai_error

logger = logging.getLogger(__name__)


def close_connection() -> bool:
    """Close this request's TCP connection (uvicorn's transport); False if it can't be found.

    ASGI has no "drop the connection" message. uvicorn runs each request in a task whose
    coroutine is `RequestResponseCycle.run_asgi`, and the cycle holds the transport.
    """
    task = asyncio.current_task()
    frame = getattr(task.get_coro(), "cr_frame", None) if task else None
    cycle = frame.f_locals.get("self") if frame is not None else None
    transport = getattr(cycle, "transport", None)
    close = getattr(transport, "close", None)
    if not callable(close):
        return False
    close()
    return True


def error_response(
    wire: Wire | str,
    status: int,
    message: str | None = None,
    *,
    retry_after: int = 1,
    param: str | None = None,
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """(status, headers, body) of an API error in the right shape for `wire` (or its api name)."""
    api = wire if isinstance(wire, str) else wire.api
    headers = list(JSON_HEADERS)
    if status == 429:
        headers.append((b"retry-after", str(retry_after).encode()))
    if api == "anthropic":
        body = anthropic_error(status, message)
        headers.append((b"request-id", body["request_id"].encode()))
        if status == 429:
            headers.append((b"anthropic-ratelimit-requests-remaining", b"0"))
        return status, headers, orjson.dumps(body)
    status = OPENAI_STATUS.get(status, status)
    return status, headers, orjson.dumps(openai_error(status, message, param))


class ScriptedResponse:
    """Plays one response: the head, the prelude, the tokens, the finale — or a fault."""

    def __init__(
        self,
        wire: Wire,
        knobs: Knobs,
        tokens: Sequence[int],
        entry: LedgerEntry,
        *,
        truncated: bool,
        stream: bool,
    ) -> None:
        self.wire = wire
        self.knobs = knobs
        self.tokens = tokens
        self.entry = entry
        self.truncated = truncated
        self.stream = stream

    async def __call__(self, _scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._watch, receive, tg.cancel_scope)
                await self._play(send)
                tg.cancel_scope.cancel()
        finally:
            self.entry.close("server_cancelled")  # no-op unless nothing recorded an end

    async def _watch(self, receive: Receive, scope: CancelScope) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.entry.close("client_disconnected", disconnected=True)
                scope.cancel()
                return

    async def _drop(self, outcome: str) -> None:
        """Close the connection and wait for the watcher to see it go."""
        self.entry.close(outcome)
        if not close_connection():
            raise RuntimeError("standin: cannot reach the connection to close it")
        await anyio.sleep_forever()

    async def _play(self, send: Send) -> None:
        knobs, wire = self.knobs, self.wire
        if knobs.head_ms:
            await asyncio.sleep(knobs.head_ms / 1000)
        if knobs.fault == "hang":
            await asyncio.sleep(knobs.hold_s)
            await self._drop("hang_timeout")
            return
        if knobs.fault == "refuse":
            await self._drop("refused")
            return
        if knobs.fault in STATUS_FAULTS:
            status, headers, body = error_response(
                wire, int(knobs.fault), retry_after=knobs.retry_after
            )
            self.entry.close(f"http_{status}")
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        if not self.stream:
            await self._play_json(send)
            return

        await send({"type": "http.response.start", "status": 200, "headers": wire.head()})
        await send({"type": "http.response.body", "body": wire.prelude(), "more_body": True})
        if knobs.ttft_ms:
            await asyncio.sleep(knobs.ttft_ms / 1000)
        fault = knobs.fault
        after = min(knobs.after, len(self.tokens)) if fault != "none" else len(self.tokens)
        await self._send_tokens(send, self.tokens[:after])
        if fault == "malformed":
            await send({"type": "http.response.body", "body": wire.malformed, "more_body": True})
            await self._send_tokens(send, self.tokens[after:])
        elif fault == "stall":
            await asyncio.sleep(knobs.hold_s)
            await self._drop("stall_timeout")
            return
        elif fault == "drop":
            await self._drop("dropped")
            return
        elif fault == "error":
            self.entry.close("error_event")
            await send({"type": "http.response.body", "body": wire.error_event})
            return
        elif fault == "truncate":
            self.entry.close("truncated")
            await send({"type": "http.response.body", "body": b""})
            return
        self.entry.close("completed")
        finale = wire.finale(self.entry.output_tokens, truncated=self.truncated)
        await send({"type": "http.response.body", "body": finale})

    async def _send_tokens(self, send: Send, tokens: Sequence[int]) -> None:
        delay = self.knobs.delay_ms / 1000
        entry, token = self.entry, self.wire.token
        for index in tokens:
            await send({"type": "http.response.body", "body": token(index), "more_body": True})
            if entry.first_token_at is None:
                entry.first_token_at = time.monotonic()
            entry.output_tokens += 1
            await asyncio.sleep(delay)  # also yields at zero delay, so the watcher gets its turn

    async def _play_json(self, send: Send) -> None:
        """A non-streaming request: the whole answer as one JSON body."""
        if self.knobs.ttft_ms:
            await asyncio.sleep(self.knobs.ttft_ms / 1000)
        text = "".join(ANSWER_TOKENS[i] for i in self.tokens).lstrip()
        self.entry.output_tokens = len(self.tokens)
        self.entry.first_token_at = time.monotonic()
        self.entry.close("completed")
        body = orjson.dumps(self.wire.message(text, len(self.tokens), truncated=self.truncated))
        headers = self.wire.head(JSON_HEADERS)
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
