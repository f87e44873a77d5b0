"""Prometheus instruments for the chat stream, on a registry owned by one app instance.

Each app gets its own `CollectorRegistry` (no global state: tests build many apps). With several
uvicorn workers, `chat-stream serve` runs prometheus_client's multiprocess mode: it sets
`PROMETHEUS_MULTIPROC_DIR` (emptied at start) before any worker imports prometheus_client, every
worker writes its samples there, and `/metrics` — whichever worker answers — sums them all
(gauges: `livesum` for open streams, the latest value for the shared outbox's depth).
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Callable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10)
DURATION_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)

__all__ = ["CONTENT_TYPE_LATEST", "ChatMetrics", "multiprocess_mode"]

_exit_hook_pids: set[int] = set()


def multiprocess_mode() -> bool:
    """Whether prometheus_client chose file-backed values (decided when it was first imported)."""
    return values.ValueClass is not values.MutexValue


class ChatMetrics:
    def __init__(self, outbox_depth: Callable[[], float] | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.shared = multiprocess_mode()
        self._outbox_depth = outbox_depth
        r = self.registry
        self.requests = Counter(
            "chat_requests", "Chat stream requests by outcome.", ["outcome"], registry=r
        )
        self.ttft = Histogram(
            "chat_time_to_first_token_seconds",
            "Request arrival to the first token relayed.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.duration = Histogram(
            "chat_stream_duration_seconds",
            "Request arrival to the end of the stream.",
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.tokens = Counter("chat_relayed_tokens", "Text deltas relayed to clients.", registry=r)
        self.cost = Counter("chat_cost_usd", "USD cost recorded, by model.", ["model"], registry=r)
        self.upstream_errors = Counter(
            "chat_upstream_errors", "Provider failures by kind.", ["kind"], registry=r
        )
        self.open_streams = Gauge(
            "chat_open_streams", "Streams in progress.", registry=r, multiprocess_mode="livesum"
        )
        self.refusals = Counter(
            "chat_guard_refusals",
            "Requests refused by a budget or rate guard.",
            ["kind"],
            registry=r,
        )
        self.auth_refusals = Counter(
            "chat_auth_refusals",
            "Access tokens refused, by reason (expired, issuer, signature, ...).",
            ["reason"],
            registry=r,
        )
        self.outbox = Gauge(
            "chat_outbox_depth",
            "Final writes waiting in the outbox.",
            registry=r,
            multiprocess_mode="mostrecent",
        )
        if self.shared:
            _forget_this_worker_at_exit()
        elif outbox_depth is not None:
            self.outbox.set_function(outbox_depth)

    def render(self) -> bytes:
        if not self.shared:
            return generate_latest(self.registry)
        if self._outbox_depth is not None:
            self.outbox.set(self._outbox_depth())  # one folder, so any worker's count is the count
        combined = CollectorRegistry()
        multiprocess.MultiProcessCollector(combined)  # type: ignore[no-untyped-call]
        return generate_latest(combined)


def _forget_this_worker_at_exit() -> None:
    """A stopped worker's live gauges (open streams) must not count any more."""
    pid = os.getpid()
    if pid not in _exit_hook_pids:
        _exit_hook_pids.add(pid)
        atexit.register(multiprocess.mark_process_dead, pid)
