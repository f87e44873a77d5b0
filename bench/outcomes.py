"""How each turn of a run ended, split the way the issue judges it (pure functions).

A turn is **done** (the stream's final event is `done`), **refused** (an HTTP 503 answer before
any stream: shed load), an **error event** (the stream started and ended with an `error` event),
or **failed** otherwise (another HTTP status, a cut or stalled stream, a connection error). A
refusal counts as "before money" only when the run's own counts show it: the upstream calls and
the usage writes of the run are no more than the turns that were not refused.

An error is **upstream-caused** when its code says the provider failed (`provider_*`: the
stand-in refused, stalled or broke its stream) and **relay-caused** otherwise (the relay's own
codes, its refusals of an accepted stream, and any stream the client lost without an error event).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bench.client import Sample

UPSTREAM_CODES = frozenset(
    {"provider_error", "provider_unavailable", "provider_timeout", "provider_stream_error"}
)
# The usage the relays write: chat-stream's `chat_finish` (the turn's usage rows) and the seed's
# insert into `usage_logs` (bench.supabase_stub's counts).
USAGE_WRITES = ("rpc:chat_finish", "insert:usage_logs")
_ERROR_CODE = re.compile(rb'\{"type":"error"[^\n]*?"code":"([a-z_]+)"')
_CODE = re.compile(rb'"code":\s*"([a-z_]+)"')


def error_code(tail: bytes) -> str | None:
    """The `code` of the last `error` event in a stream's tail; None when it has none (the seed's
    error events carry only a message)."""
    found = _ERROR_CODE.findall(tail)
    return found[-1].decode() if found else None


def refusal_code(body: bytes) -> str | None:
    """The `code` of a JSON refusal (`{"error", "userMessage", "code"}`); None without one."""
    found = _CODE.search(body)
    return found[1].decode() if found else None


def kind_of(sample: Sample) -> str:
    """done | refused | error_event | failed."""
    if sample.outcome == "done":
        return "done"
    if sample.outcome == "http_503":
        return "refused"
    if sample.outcome == "error_event":
        return "error_event"
    return "failed"


def cause_of(sample: Sample) -> str | None:
    """Who caused a turn that neither finished nor was refused: "upstream" or "relay"."""
    kind = kind_of(sample)
    if kind in ("done", "refused"):
        return None
    if kind == "error_event" and error_code(sample.tail) in UPSTREAM_CODES:
        return "upstream"
    return "relay"


@dataclass
class Split:
    """The turns of one run by how they ended, and whether the refusals spent money."""

    done: int = 0
    refused: int = 0
    refused_with_retry_after: int = 0
    error_events: int = 0
    failed: int = 0
    error_codes: dict[str, int] = field(default_factory=dict)  # error events by code
    refusal_codes: dict[str, int] = field(default_factory=dict)  # 503s by code and Retry-After
    failures: dict[str, int] = field(default_factory=dict)  # failed turns by client outcome
    relay_caused: int = 0
    upstream_caused: int = 0
    upstream_calls: int | None = None  # requests the stand-in saw during the run
    usage_writes: int | None = None  # usage writes the stub saw during the run

    @property
    def turns(self) -> int:
        return self.done + self.refused + self.error_events + self.failed

    @property
    def accepted(self) -> int:
        return self.turns - self.refused

    @property
    def refused_before_money(self) -> bool | None:
        """Every refusal came before money: no more upstream calls and usage writes than
        accepted turns (None when the run did not count them)."""
        if self.upstream_calls is None or self.usage_writes is None:
            return None
        return self.upstream_calls <= self.accepted and self.usage_writes <= self.accepted

    def as_json(self) -> dict[str, Any]:
        return {
            "turns": self.turns,
            "done": self.done,
            "refused_503": self.refused,
            "refused_with_retry_after": self.refused_with_retry_after,
            "error_events": self.error_events,
            "failed": self.failed,
            "error_codes": self.error_codes,
            "refusal_codes": self.refusal_codes,
            "failures": self.failures,
            "relay_caused_errors": self.relay_caused,
            "upstream_caused_errors": self.upstream_caused,
            "accepted": self.accepted,
            "upstream_calls": self.upstream_calls,
            "usage_writes": self.usage_writes,
            "refused_before_money": self.refused_before_money,
        }


def split(
    samples: Iterable[Sample],
    *,
    upstream_calls: int | None = None,
    writes: Mapping[str, int] | None = None,
) -> Split:
    """Count `samples` by how they ended; `upstream_calls` and `writes` (the stub's counts over
    the same run) decide whether the refusals spent money."""
    out = Split(upstream_calls=upstream_calls)
    codes: Counter[str] = Counter()
    refusals: Counter[str] = Counter()
    failures: Counter[str] = Counter()
    for sample in samples:
        kind = kind_of(sample)
        if kind == "done":
            out.done += 1
        elif kind == "refused":
            out.refused += 1
            out.refused_with_retry_after += sample.retry_after is not None
            code = refusal_code(sample.tail) or "(no code)"
            refusals[code + ("" if sample.retry_after is not None else " without Retry-After")] += 1
        elif kind == "error_event":
            out.error_events += 1
            codes[error_code(sample.tail) or "(no code)"] += 1
        else:
            out.failed += 1
            failures[sample.outcome] += 1
        cause = cause_of(sample)
        out.relay_caused += cause == "relay"
        out.upstream_caused += cause == "upstream"
    out.error_codes, out.failures = dict(codes), dict(failures)
    out.refusal_codes = dict(refusals)
    if writes is not None:
        out.usage_writes = sum(writes.get(name, 0) for name in USAGE_WRITES)
    return out


def count_delta(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    """What a run added to the stub's counts (names it did not touch left out)."""
    names = set(before) | set(after)
    delta = {name: after.get(name, 0) - before.get(name, 0) for name in sorted(names)}
    return {name: n for name, n in delta.items() if n}
