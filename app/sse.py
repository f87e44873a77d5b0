"""Server-Sent Events: every byte of the wire contract (docs/design.md §4) is written here.

Each event is one `data:` line of compact JSON and a blank line; heartbeats are SSE comments.
The use case yields domain events (`TextDelta`, `Done`, `Failed`); `encode_event` turns each into
the seed's shapes. The response that sends them is `api/stream.py`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson

from app.domain import Done, TextDelta, TurnEvent

PING = b": ping\n\n"
SSE_HEADERS: Mapping[str, str] = {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache",
    "connection": "keep-alive",
    "x-accel-buffering": "no",
}

_TOKEN_PREFIX = b'data: {"type":"token","content":'


def encode(event: Mapping[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(event) + b"\n\n"


def encode_event(event: TurnEvent) -> bytes:
    """The wire form of a turn event: `token`, `done` or `error`."""
    if isinstance(event, TextDelta):
        return encode_token(event.text)
    if isinstance(event, Done):
        done: dict[str, Any] = {
            "type": "done",
            "messageId": event.message_id,
            "usage": {
                "prompt_tokens": event.usage.prompt_tokens,
                "completion_tokens": event.usage.output_tokens,
                "total_tokens": event.usage.total_tokens,
            },
        }
        if event.replayed:
            done["replayed"] = True
        return encode(done)
    return encode({"type": "error", "message": event.user_message, "code": event.code})


def encode_token(text: str) -> bytes:
    """The hot path: one token event without building a dict per token."""
    return _TOKEN_PREFIX + orjson.dumps(text) + b"}\n\n"


class ClientGone(Exception):
    """The client closed the connection; the stream must stop and clean up."""


Emit = Callable[[bytes], Awaitable[None]]
Producer = Callable[[Emit], Awaitable[None]]
