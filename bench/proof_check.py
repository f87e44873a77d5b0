"""Judging the load proof (pure): did every client see what its request was meant to produce,
is there exactly one usage row per billed upstream request, and do the stored costs add up to
what the stand-in billed?

The join key is the input token count (see `proof_plan`): request i, its stand-in ledger entry
and its usage row all carry `base + i`. A killed turn's `abandoned` row carries the database's
own estimate instead (system prompt + history, UTF-8 bytes, without the stand-in's framing),
so it is joined by its user: every request is the only turn of its own user.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from app.core.domain import Usage
from bench.client import Sample
from bench.proof_plan import CUT, ProofRequest

PriceFn = Callable[[str, Usage], Decimal]

ABANDONED = "abandoned"
# Client outcomes that are not a stream's end: the connection stopped under it (a killed worker).
ENDINGS = frozenset({"done", "error_event", "left", "timeout", "pending"})


@dataclass
class Verdict:
    """The counts the proof reports; `ok` when nothing unexpected happened."""

    requests: int = 0
    client_outcomes: Counter[str] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    ledger_entries: int = 0
    ledger_billed: int = 0
    usage_rows: int = 0
    rows_per_billed_request: Counter[int] = field(default_factory=Counter)
    rows_for_unbilled_requests: int = 0
    rows_without_a_request: int = 0
    exact_rows: int = 0
    exact_rows_matching: int = 0
    exact_cost_stored: Decimal = Decimal(0)
    exact_cost_billed: Decimal = Decimal(0)
    estimated_rows: int = 0
    estimated_tokens_stored: int = 0
    estimated_tokens_billed: int = 0
    estimated_cost_stored: Decimal = Decimal(0)
    estimated_cost_billed: Decimal = Decimal(0)
    estimated_gap_by_kind: dict[str, dict[str, int]] = field(default_factory=dict)
    input_mismatches: int = 0
    # Turns whose worker was killed: one `abandoned` row each, input and output estimated.
    killed_requests: int = 0
    rows_per_killed_request: Counter[int] = field(default_factory=Counter)
    abandoned_rows: int = 0
    abandoned_rows_flagged: int = 0  # estimated, output_unknown, tokens_out = 0
    abandoned_rows_priced_as_estimated: int = 0
    abandoned_rows_for_other_requests: int = 0
    abandoned_tokens_in_stored: int = 0
    abandoned_tokens_in_billed: int = 0
    abandoned_tokens_out_stored: int = 0  # the output the service last reported
    abandoned_tokens_out_billed: int = 0
    abandoned_cost_stored: Decimal = Decimal(0)
    abandoned_cost_billed: Decimal = Decimal(0)

    @property
    def cost_stored(self) -> Decimal:
        return self.exact_cost_stored + self.estimated_cost_stored + self.abandoned_cost_stored

    @property
    def cost_billed(self) -> Decimal:
        return self.exact_cost_billed + self.estimated_cost_billed + self.abandoned_cost_billed

    @property
    def ok(self) -> bool:
        return (
            not self.unexpected
            and set(self.rows_per_billed_request) <= {1}
            and self.rows_for_unbilled_requests == 0
            and self.rows_without_a_request == 0
            and self.exact_rows == self.exact_rows_matching
            and self.exact_cost_stored == self.exact_cost_billed
            and self.input_mismatches == 0
            and set(self.rows_per_killed_request) <= {1}
            and self.abandoned_rows == self.killed_requests
            and self.abandoned_rows_flagged == self.abandoned_rows
            and self.abandoned_rows_priced_as_estimated == self.abandoned_rows
            and self.abandoned_rows_for_other_requests == 0
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "requests": self.requests,
            "client_outcomes": dict(self.client_outcomes),
            "unexpected": self.unexpected,
            "ledger_entries": self.ledger_entries,
            "ledger_billed": self.ledger_billed,
            "usage_rows": self.usage_rows,
            "rows_per_billed_request": {str(k): v for k, v in self.rows_per_billed_request.items()},
            "rows_for_unbilled_requests": self.rows_for_unbilled_requests,
            "rows_without_a_request": self.rows_without_a_request,
            "input_mismatches": self.input_mismatches,
            "exact_rows": self.exact_rows,
            "exact_rows_matching": self.exact_rows_matching,
            "exact_cost_stored": str(self.exact_cost_stored),
            "exact_cost_billed": str(self.exact_cost_billed),
            "estimated_rows": self.estimated_rows,
            "estimated_tokens_stored": self.estimated_tokens_stored,
            "estimated_tokens_billed": self.estimated_tokens_billed,
            "estimated_cost_stored": str(self.estimated_cost_stored),
            "estimated_cost_billed": str(self.estimated_cost_billed),
            "estimated_gap_by_kind": self.estimated_gap_by_kind,
            "killed_requests": self.killed_requests,
            "rows_per_killed_request": {str(k): v for k, v in self.rows_per_killed_request.items()},
            "abandoned_rows": self.abandoned_rows,
            "abandoned_rows_flagged": self.abandoned_rows_flagged,
            "abandoned_rows_priced_as_estimated": self.abandoned_rows_priced_as_estimated,
            "abandoned_rows_for_other_requests": self.abandoned_rows_for_other_requests,
            "abandoned_tokens_in_stored": self.abandoned_tokens_in_stored,
            "abandoned_tokens_in_billed": self.abandoned_tokens_in_billed,
            "abandoned_tokens_out_stored": self.abandoned_tokens_out_stored,
            "abandoned_tokens_out_billed": self.abandoned_tokens_out_billed,
            "abandoned_cost_stored": str(self.abandoned_cost_stored),
            "abandoned_cost_billed": str(self.abandoned_cost_billed),
            "cost_stored": str(self.cost_stored),
            "cost_billed": str(self.cost_billed),
        }


def judge_client(request: ProofRequest, sample: Sample | None) -> str | None:
    """None when the client saw what the request was meant to produce, else why not."""
    if sample is None:
        return f"#{request.index} {request.kind}: never sent"
    outcome, tokens = request.expected()
    if ending(sample) != outcome:
        return f"#{request.index} {request.kind}: {sample.outcome} (wanted {outcome})"
    # A leaver stops after the chunk that reached its mark; under load one chunk carries several
    # token events (the service coalesces writes), so it may have seen a few more, never fewer.
    overshoot = request.kind == "leave" and tokens is not None and sample.tokens > tokens
    if tokens is not None and sample.tokens != tokens and not overshoot:
        return f"#{request.index} {request.kind}: {sample.tokens} tokens (wanted {tokens})"
    if request.killed and sample.tokens < 1:
        return f"#{request.index} {request.kind}: cut before its first token (wanted mid-stream)"
    return None


def ending(sample: Sample) -> str:
    """The sample's outcome, with every way a stream can stop under the client (the server
    gone: a payload error, a reset, a body without its end event) folded into CUT."""
    if sample.outcome in ENDINGS or sample.outcome.startswith("http_"):
        return sample.outcome
    return CUT


def is_abandoned(row: Mapping[str, Any]) -> bool:
    return row.get("status") == ABANDONED


def ledger_usage(entry: Mapping[str, Any]) -> Usage:
    return Usage(
        input_tokens=int(entry["input_tokens"]),
        output_tokens=int(entry["output_tokens"]),
        cache_read_tokens=int(entry["cache_read_tokens"]),
        cache_write_tokens=int(entry["cache_write_tokens"]),
    )


def reconcile(
    requests: Sequence[ProofRequest],
    samples: Mapping[int, Sample],
    ledger: Sequence[Mapping[str, Any]],
    rows: Sequence[Mapping[str, Any]],
    price: PriceFn,
    owners: Mapping[str, int] | None = None,
) -> Verdict:
    """`owners` maps each request's user id to the request's index (joins abandoned rows)."""
    verdict = Verdict(requests=len(requests), ledger_entries=len(ledger), usage_rows=len(rows))
    for request in requests:
        sample = samples.get(request.index)
        verdict.client_outcomes[sample.outcome if sample else "never_sent"] += 1
        if (problem := judge_client(request, sample)) is not None:
            verdict.unexpected.append(problem)

    base = min((int(e["input_tokens"]) for e in ledger), default=0)
    by_key: dict[int, list[Mapping[str, Any]]] = defaultdict(list)
    for entry in ledger:
        by_key[int(entry["input_tokens"]) - base].append(entry)
    rows_by_key: dict[int, list[Mapping[str, Any]]] = defaultdict(list)
    stray_abandoned = 0
    for row in rows:
        if is_abandoned(row):
            owner = (owners or {}).get(str(row.get("user_id")))
            if owner is None:
                stray_abandoned += 1
                continue
            rows_by_key[owner].append(row)
        else:
            rows_by_key[int(row["tokens_in"]) - base].append(row)
    known = {r.index for r in requests}
    verdict.rows_without_a_request = stray_abandoned + sum(
        len(v) for k, v in rows_by_key.items() if k not in known
    )

    gaps: dict[str, Counter[str]] = defaultdict(Counter)
    for request in requests:
        entries = by_key.get(request.index, [])
        matched = rows_by_key.get(request.index, [])
        if len(entries) != 1:
            verdict.input_mismatches += 1
            verdict.unexpected.append(f"#{request.index}: {len(entries)} ledger entries")
            continue
        (entry,) = entries
        if not request.billed:
            verdict.rows_for_unbilled_requests += len(matched)
            continue
        verdict.ledger_billed += 1
        verdict.rows_per_billed_request[len(matched)] += 1
        if request.killed:
            verdict.killed_requests += 1
            verdict.rows_per_killed_request[len(matched)] += 1
        else:
            verdict.abandoned_rows_for_other_requests += sum(map(is_abandoned, matched))
        if len(matched) != 1:
            continue
        (row,) = matched
        billed = ledger_usage(entry)
        billed_cost = price(str(entry["model"]), billed)
        stored_cost = Decimal(str(row["cost_usd"]))
        if is_abandoned(row):
            if request.killed:
                _count_abandoned(verdict, row, billed, billed_cost, price)
        elif row["estimated"]:
            verdict.estimated_rows += 1
            verdict.estimated_tokens_stored += int(row["tokens_out"])
            verdict.estimated_tokens_billed += billed.output_tokens
            verdict.estimated_cost_stored += stored_cost
            verdict.estimated_cost_billed += billed_cost
            gap = gaps[request.kind]
            gap["rows"] += 1
            gap["tokens_stored"] += int(row["tokens_out"])
            gap["tokens_billed"] += billed.output_tokens
            gap["rows_equal"] += int(row["tokens_out"]) == billed.output_tokens
            seen = samples.get(request.index)
            gap["tokens_client_saw"] += seen.tokens if seen is not None else 0
        else:
            verdict.exact_rows += 1
            same = int(row["tokens_out"]) == billed.output_tokens and stored_cost == billed_cost
            verdict.exact_rows_matching += same
            verdict.exact_cost_stored += stored_cost
            verdict.exact_cost_billed += billed_cost
    verdict.estimated_gap_by_kind = {kind: dict(c) for kind, c in sorted(gaps.items())}
    return verdict


def _count_abandoned(
    verdict: Verdict, row: Mapping[str, Any], billed: Usage, billed_cost: Decimal, price: PriceFn
) -> None:
    """A killed turn's row: input as estimated at begin, output as last reported (a renewal or a
    checkpoint; none: 0 and output_unknown), each at the model's rate."""
    tokens_in = int(row["tokens_in"])
    stored_cost = Decimal(str(row["cost_usd"]))
    verdict.abandoned_rows += 1
    tokens_out = int(row["tokens_out"])
    # Estimated; output_unknown exactly when the service never reported any output (then 0).
    verdict.abandoned_rows_flagged += bool(
        row["estimated"] and bool(row.get("output_unknown")) == (tokens_out == 0)
    )
    estimate = Usage(input_tokens=tokens_in, output_tokens=tokens_out)
    verdict.abandoned_rows_priced_as_estimated += stored_cost == price(str(row["model"]), estimate)
    verdict.abandoned_tokens_out_stored += tokens_out
    verdict.abandoned_tokens_in_stored += tokens_in
    verdict.abandoned_tokens_in_billed += (
        billed.input_tokens + billed.cache_read_tokens + billed.cache_write_tokens
    )
    verdict.abandoned_tokens_out_billed += billed.output_tokens
    verdict.abandoned_cost_stored += stored_cost
    verdict.abandoned_cost_billed += billed_cost
