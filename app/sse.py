"""Server-Sent Events encoding: the wire contract of DESIGN §4 (pure; the response is in api/).

Each event is one `data:` line of compact JSON and a blank line. Heartbeats are SSE comments.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson

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


def encode_token(text: str) -> bytes:
    """The hot path: one token event without building a dict per token."""
    return _TOKEN_PREFIX + orjson.dumps(text) + b"}\n\n"


class ClientGone(Exception):
    """The client closed the connection; the stream must stop and clean up."""


Emit = Callable[[bytes], Awaitable[None]]
Producer = Callable[[Emit], Awaitable[None]]
