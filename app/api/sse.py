"""Server-Sent Events: every byte of the wire contract (docs/design.md §4) is written here.

Each event is one `data:` line of compact JSON and a blank line; heartbeats are SSE comments.
The use case yields domain events (`TextDelta`, `Done`, `Failed`, and `Expired` on a resume);
`encode_event` turns each into the seed's shapes. The response that sends them is `api/stream.py`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson

from app.core.domain import Done, Expired, ResumeEvent, TextDelta
from app.user_messages import user_message

# A comment line alone: a blank line after it would make some clients (httpx-sse) report an
# empty event once an event had an id.
PING = b": ping\n"
SSE_HEADERS: Mapping[str, str] = {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache",
    "connection": "keep-alive",
    "x-accel-buffering": "no",
}

_TOKEN_PREFIX = b'data: {"type":"token","content":'


def encode(event: Mapping[str, Any], id_line: bytes = b"") -> bytes:
    return id_line + b"data: " + orjson.dumps(event) + b"\n\n"


def event_id(turn_id: str, seq: int) -> bytes:
    """`id: <turn_id>:<seq>`: what a reconnecting client sends back as `Last-Event-ID`."""
    return b"id: " + turn_id.encode() + b":" + str(seq).encode() + b"\n"


def encode_event(event: ResumeEvent, turn_id: str | None = None, seq: int = 0) -> bytes:
    """The wire form of a turn event: `token`, `done`, `error` or (a resume's last) `expired`,
    with its id when `turn_id`."""
    prefix = event_id(turn_id, seq) if turn_id else b""
    if isinstance(event, TextDelta):
        return encode_token(event.text, prefix)
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
        if turn_id:
            done["turnId"] = turn_id
        if event.replayed:
            done["replayed"] = True
        return encode(done, prefix)
    if isinstance(event, Expired):
        expired = {
            "type": "expired",
            "turnId": turn_id,
            "messageId": event.message_id,
            "content": event.content,
            "message": user_message("expired"),
        }
        return encode(expired, prefix)
    return encode({"type": "error", "message": event.user_message, "code": event.code}, prefix)


def encode_token(text: str, prefix: bytes = b"") -> bytes:
    """The hot path: one token event without building a dict per token."""
    return prefix + _TOKEN_PREFIX + orjson.dumps(text) + b"}\n\n"


class ClientGone(Exception):
    """The client closed the connection; the stream must stop and clean up."""


Emit = Callable[[bytes], Awaitable[None]]
Producer = Callable[[Emit], Awaitable[None]]
