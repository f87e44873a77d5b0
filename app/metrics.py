"""Prometheus instruments for the chat stream, on a registry owned by one app instance.

Each app gets its own `CollectorRegistry` (no global state: tests build many apps). With several
uvicorn workers each worker exposes its own counters; scrape each, or run one worker per pod.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10)
DURATION_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)

__all__ = ["CONTENT_TYPE_LATEST", "ChatMetrics"]


class ChatMetrics:
    def __init__(self, outbox_depth: Callable[[], float] | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
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
        self.open_streams = Gauge("chat_open_streams", "Streams in progress.", registry=r)
        self.refusals = Counter(
            "chat_guard_refusals",
            "Requests refused by a budget or rate guard.",
            ["kind"],
            registry=r,
        )
        self.outbox = Gauge("chat_outbox_depth", "Final writes waiting in the outbox.", registry=r)
        if outbox_depth is not None:
            self.outbox.set_function(outbox_depth)

    def render(self) -> bytes:
        return generate_latest(self.registry)
