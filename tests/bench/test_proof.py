"""The load proof's plan and its reconciliation of client outcomes, ledger and usage rows."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from app.domain import Usage
from app.local.llm.knobs import Knobs, from_directive
from app.local.llm.prompt import estimate_tokens
from bench.client import Sample
from bench.proof_check import reconcile
from bench.proof_plan import MIX, ProofRequest, plan_requests


def test_plan_requests_follows_the_mix_and_spreads_over_the_run() -> None:
    requests = plan_requests(500, 60, seed=1)

    kinds = [r.kind for r in requests]
    assert {k: kinds.count(k) for k in MIX} == {k: 5 * share for k, share in MIX.items()}
    assert [r.index for r in requests] == list(range(500))
    assert all(0 <= r.send_at < 60 for r in requests)
    assert requests == plan_requests(500, 60, seed=1)


def test_each_prompt_is_one_stand_in_token_longer_than_the_last() -> None:
    requests = plan_requests(200, 10, seed=2)

    tokens = [estimate_tokens(r.text()) for r in requests]

    assert tokens == list(range(tokens[0], tokens[0] + 200))


@pytest.mark.parametrize("kind", ["normal", "drop", "529", "leave"])
def test_the_prompt_carries_the_knobs_the_stand_in_reads(kind: str) -> None:
    request = next(r for r in plan_requests(300, 10, seed=3) if r.kind == kind)

    knobs = from_directive(Knobs(), request.text())

    assert (knobs.tokens, knobs.delay_ms) == (request.tokens, request.delay_ms)
    assert knobs.fault == (request.fault or "none")
    if request.fault:
        assert knobs.after == request.after


def req(index: int, kind: str, tokens: int = 10, after: int = 0) -> ProofRequest:
    return ProofRequest(index, kind, tokens, 20, after, 4 if kind == "leave" else None, 0.0)


def sample(outcome: str, tokens: int) -> Sample:
    return Sample(started=0.0, status=200, tokens=tokens, outcome=outcome)


def entry(index: int, output: int, model: str = "m") -> dict[str, Any]:
    return {
        "input_tokens": 100 + index,
        "output_tokens": output,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "model": model,
    }


def row(index: int, output: int, cost: str, *, estimated: bool = False) -> dict[str, Any]:
    return {
        "tokens_in": 100 + index,
        "tokens_out": output,
        "cost_usd": cost,
        "estimated": estimated,
    }


def price(_model: str, usage: Usage) -> Decimal:
    return Decimal(usage.input_tokens + usage.output_tokens) / 1000


REQUESTS = [req(0, "normal"), req(1, "leave"), req(2, "529"), req(3, "drop", after=3)]
SAMPLES = {
    0: sample("done", 10),
    1: sample("left", 4),
    2: sample("error_event", 0),
    3: sample("error_event", 3),
}
LEDGER = [entry(0, 10), entry(1, 6), entry(2, 0), entry(3, 3)]


def test_reconcile_accepts_one_row_per_billed_request_and_measures_estimates() -> None:
    rows = [
        row(0, 10, "0.11"),
        row(1, 4, "0.105", estimated=True),
        row(3, 3, "0.106", estimated=True),
    ]

    verdict = reconcile(REQUESTS, SAMPLES, LEDGER, rows, price)

    assert verdict.ok, verdict.as_json()
    assert (verdict.ledger_billed, verdict.usage_rows, verdict.exact_rows) == (3, 3, 1)
    assert verdict.exact_cost_stored == verdict.exact_cost_billed == Decimal("0.11")
    assert (verdict.estimated_tokens_stored, verdict.estimated_tokens_billed) == (7, 9)
    assert verdict.estimated_gap_by_kind["leave"] == {
        "rows": 1,
        "tokens_stored": 4,
        "tokens_billed": 6,
        "rows_equal": 0,
        "tokens_client_saw": 4,
    }


@pytest.mark.parametrize(
    "rows",
    [
        [
            row(0, 10, "0.11"),
            row(0, 10, "0.11"),
            row(1, 4, "0.1", estimated=True),
            row(3, 3, "0.1", estimated=True),
        ],
        [row(0, 10, "0.11"), row(3, 3, "0.1", estimated=True)],  # the leaver's row is lost
        [
            row(0, 10, "0.11"),
            row(1, 4, "0.1", estimated=True),
            row(2, 0, "0.1"),
            row(3, 3, "0.1", estimated=True),
        ],
        [row(0, 9, "0.109"), row(1, 4, "0.1", estimated=True), row(3, 3, "0.1", estimated=True)],
        [
            row(0, 10, "0.11"),
            row(1, 4, "0.1", estimated=True),
            row(3, 3, "0.1", estimated=True),
            row(9, 1, "0.1"),
        ],
    ],
    ids=["duplicate", "missing", "unbilled", "wrong-count", "stray"],
)
def test_reconcile_refuses_lost_duplicate_stray_or_wrong_rows(rows: list[dict[str, Any]]) -> None:
    assert not reconcile(REQUESTS, SAMPLES, LEDGER, rows, price).ok


def test_reconcile_flags_a_client_that_saw_the_wrong_ending() -> None:
    samples = SAMPLES | {0: sample("error_event", 5)}
    rows = [row(0, 10, "0.11"), row(1, 4, "0.1", estimated=True), row(3, 3, "0.1", estimated=True)]

    verdict = reconcile(REQUESTS, samples, LEDGER, rows, price)

    assert verdict.unexpected == ["#0 normal: error_event (wanted done)"]
    assert not verdict.ok
