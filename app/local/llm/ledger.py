"""The LLM stand-in's billing ledger: what each request would have cost upstream.

Like the real APIs, a request the client abandons is billed for the tokens generated until the
stand-in noticed. `closed_at` is `time.monotonic()` when the stream ended or the disconnect was
seen; CLOCK_MONOTONIC is machine-wide on Linux, so a test in another process on the same machine
can compare it with its own `time.monotonic()` ("upstream closed within 100 ms").
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

_ids = itertools.count(1)


@dataclass
class LedgerEntry:
    request_id: str
    api: str  # "anthropic" | "openai"
    model: str
    stream: bool
    fault: str
    client: str = ""  # "host:port" of the caller's connection (shows connection reuse)
    input_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0  # tokens sent before the end, the fault or the disconnect
    client_disconnected: bool = False
    traceparent: str | None = None  # the W3C trace context the caller sent, as sent
    outcome: str = "open"  # completed | client_disconnected | refused | http_<status> | dropped …
    started_at: float = dataclasses.field(default_factory=time.monotonic)
    first_token_at: float | None = None
    closed_at: float | None = None
    seq: int = dataclasses.field(default_factory=lambda: next(_ids))

    @property
    def is_open(self) -> bool:
        return self.closed_at is None

    def close(self, outcome: str, *, disconnected: bool = False) -> None:
        """Record the end once; later calls (e.g. the watcher after a drop) change nothing."""
        if self.closed_at is not None:
            return
        self.closed_at = time.monotonic()
        self.outcome = outcome
        self.client_disconnected = disconnected

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Ledger:
    """The most recent entries (bounded, so a long load run keeps a flat memory profile)."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self._entries: deque[LedgerEntry] = deque(maxlen=max_entries)

    def add(self, entry: LedgerEntry) -> LedgerEntry:
        self._entries.append(entry)
        return entry

    def entries(self, since: float | None = None) -> list[LedgerEntry]:
        """Entries started at or after `since` (a `time.monotonic()` value), oldest first."""
        if since is None:
            return list(self._entries)
        return [e for e in self._entries if e.started_at >= since]

    def clear(self) -> None:
        self._entries.clear()
