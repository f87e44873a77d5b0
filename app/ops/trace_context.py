"""W3C Trace Context (`traceparent`, `tracestate`): parsed strictly, kept, passed on.

A client (supabase-js with trace propagation on) may send `traceparent: 00-<32 hex trace id>-<16
hex parent id>-<2 hex flags>` and a `tracestate` list. `parse_traceparent` accepts exactly what
the W3C recommendation (level 1, §3.2–3.3) allows: lowercase hex, no all-zero ids, version `ff`
invalid, version 00 with nothing after the flags, a later version with anything after a `-`.
A malformed `traceparent` is ignored (and with it the `tracestate`); a malformed `tracestate` alone
is dropped. Nothing here raises on hostile input.

The edge (`app/api/trace.py`) sets the request's context in `current`; tasks started for the
request inherit it. `app.ops.tracing.inject_headers` passes it on to the providers and the Data
API.
"""

from __future__ import annotations

import contextvars
import re
from collections.abc import Mapping
from dataclasses import dataclass

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")
_KEY = re.compile(
    r"^(?:[a-z][a-z0-9_\-*/]{0,255}|[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13})$"
)
_VALUE = re.compile(r"^[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]$")
MAX_TRACESTATE_MEMBERS = 32
MAX_HEADER_CHARS = 512  # we pass on at most this much of a tracestate (the spec's floor)


@dataclass(frozen=True)
class TraceContext:
    trace_id: str  # 32 lowercase hex digits
    parent_id: str  # 16 lowercase hex digits: the caller's span
    flags: str  # 2 hex digits; 01 = sampled
    tracestate: str | None = None

    @property
    def sampled(self) -> bool:
        return bool(int(self.flags, 16) & 1)

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.parent_id}-{self.flags}"


def parse_traceparent(value: str | None) -> TraceContext | None:
    if not value or len(value) > MAX_HEADER_CHARS:
        return None
    match = _TRACEPARENT.fullmatch(value)
    if match is None:
        return None
    version, trace_id, parent_id, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest is not None):
        return None
    if trace_id == "0" * 32 or parent_id == "0" * 16:
        return None
    return TraceContext(trace_id, parent_id, flags)


def parse_tracestate(value: str | None) -> str | None:
    """The list normalised (`key=value` members joined by `,`), or None when it is malformed,
    empty, repeats a key, has more than 32 members or is longer than we pass on."""
    if not value or len(value) > MAX_HEADER_CHARS:
        return None
    members: list[str] = []
    keys: set[str] = set()
    for raw in value.split(","):
        member = raw.strip(" \t")
        if not member:
            continue  # empty members are allowed and dropped
        key, sep, val = member.partition("=")
        if not sep or not _KEY.fullmatch(key) or not _VALUE.fullmatch(val) or key in keys:
            return None
        keys.add(key)
        members.append(f"{key}={val}")
    if not members or len(members) > MAX_TRACESTATE_MEMBERS:
        return None
    return ",".join(members)


def from_headers(headers: Mapping[str, str]) -> TraceContext | None:
    """The trace context a request carries, or None. Headers are looked up lowercase; a
    repeated `traceparent` (joined with `,` by the server) is malformed, so ignored."""
    context = parse_traceparent(headers.get("traceparent"))
    if context is None:
        return None
    state = parse_tracestate(headers.get("tracestate"))
    return TraceContext(context.trace_id, context.parent_id, context.flags, state)


current: contextvars.ContextVar[TraceContext | None] = contextvars.ContextVar(
    "chat_stream_trace_context", default=None
)
