"""The load proof's plan and its reconciliation of client outcomes, ledger and usage rows."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from app.core.domain import Usage
from app.local.llm.knobs import Knobs, from_directive
from app.local.llm.prompt import estimate_tokens
from bench.client import Sample
from bench.proof import FirstTokens
from bench.proof_check import judge_client, reconcile
from bench.proof_plan import (
    KILLED_DELAY_MS,
    KILLED_MIN_TOKENS,
    KILLED_SEND_SHARE,
    MIX,
    ProofRequest,
    plan_requests,
)


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


def test_plan_requests_sends_the_killed_turns_early_and_slow() -> None:
    requests = plan_requests(500, 60, seed=1)

    killed = [r for r in requests if r.killed]

    assert len(killed) == 5 * MIX["killed"] > 0
    assert all(r.send_at < 60 * KILLED_SEND_SHARE for r in killed)
    assert all(r.tokens >= KILLED_MIN_TOKENS and r.delay_ms == KILLED_DELAY_MS for r in killed)
    assert all(r.fault is None and r.billed for r in killed)
    assert max(r.send_at for r in requests if not r.killed) > 60 * 0.9


@pytest.mark.parametrize("kind", ["normal", "drop", "529", "leave", "killed"])
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


def abandoned(user: str, tokens_in: int, cost: str, **fields: object) -> dict[str, Any]:
    """A row as `private.abandon_expired` writes it for a turn whose worker died."""
    return {
        "user_id": user,
        "tokens_in": tokens_in,
        "tokens_out": 0,
        "cost_usd": cost,
        "model": "m",
        "status": "abandoned",
        "estimated": True,
        "output_unknown": True,
    } | fields


# Request 4 streamed through the doomed worker: the stand-in billed 104 in + 42 out (0.146); the
# database estimated 90 input tokens at begin and priced them at the input rate (0.09).
KILLED_REQUESTS = [*REQUESTS, req(4, "killed", tokens=300)]
KILLED_SAMPLES = SAMPLES | {4: sample("ClientPayloadError", 40)}
KILLED_LEDGER = [*LEDGER, entry(4, 42)]
OWNERS = {f"user-{i}": i for i in range(5)}
LIVE_ROWS = [
    row(0, 10, "0.11"),
    row(1, 4, "0.105", estimated=True),
    row(3, 3, "0.106", estimated=True),
]


def test_reconcile_counts_a_killed_turns_abandoned_row_apart_and_prices_it() -> None:
    rows = [*LIVE_ROWS, abandoned("user-4", 90, "0.09")]

    verdict = reconcile(KILLED_REQUESTS, KILLED_SAMPLES, KILLED_LEDGER, rows, price, OWNERS)

    assert verdict.ok, verdict.as_json()
    assert (verdict.ledger_billed, verdict.usage_rows, verdict.rows_per_billed_request) == (
        4,
        4,
        {1: 4},
    )
    assert (verdict.exact_rows, verdict.estimated_rows, verdict.exact_cost_stored) == (
        1,
        2,
        Decimal("0.11"),
    )
    assert (verdict.killed_requests, verdict.abandoned_rows) == (1, 1)
    assert verdict.abandoned_rows_flagged == verdict.abandoned_rows_priced_as_estimated == 1
    assert (verdict.abandoned_tokens_in_stored, verdict.abandoned_tokens_in_billed) == (90, 104)
    assert verdict.abandoned_tokens_out_billed == 42
    assert verdict.abandoned_cost_stored == Decimal("0.09")
    assert verdict.abandoned_cost_billed == Decimal("0.146")
    assert verdict.cost_stored == Decimal("0.11") + Decimal("0.211") + Decimal("0.09")
    assert verdict.as_json()["abandoned_cost_billed"] == "0.146"


@pytest.mark.parametrize(
    "rows",
    [
        LIVE_ROWS,
        [*LIVE_ROWS, abandoned("user-4", 90, "0.09"), abandoned("user-4", 90, "0.09")],
        [*LIVE_ROWS, abandoned("user-4", 90, "0.09", output_unknown=False)],
        [*LIVE_ROWS, abandoned("user-4", 90, "0.09", tokens_out=5)],
        [*LIVE_ROWS, abandoned("user-4", 90, "0.2")],
        [*LIVE_ROWS, row(4, 42, "0.146")],
        [abandoned("user-0", 90, "0.09"), *LIVE_ROWS[1:], abandoned("user-4", 90, "0.09")],
        [*LIVE_ROWS, abandoned("user-4", 90, "0.09"), abandoned("someone-else", 90, "0.09")],
    ],
    ids=[
        "lost",
        "duplicate",
        "output-not-flagged",
        "output-stored",
        "mispriced",
        "not-abandoned",
        "abandoned-but-not-killed",
        "stray",
    ],
)
def test_reconcile_refuses_a_killed_turn_without_exactly_one_sound_abandoned_row(
    rows: list[dict[str, Any]],
) -> None:
    verdict = reconcile(KILLED_REQUESTS, KILLED_SAMPLES, KILLED_LEDGER, rows, price, OWNERS)

    assert not verdict.ok


@pytest.mark.parametrize(
    ("outcome", "tokens", "problem"),
    [
        ("ClientPayloadError", 40, False),
        ("ServerDisconnectedError", 1, False),
        ("incomplete", 3, False),
        ("done", 300, True),
        ("error_event", 40, True),
        ("ClientPayloadError", 0, True),
    ],
)
def test_judge_client_wants_a_killed_turn_cut_mid_stream(
    outcome: str, tokens: int, problem: bool
) -> None:
    request = req(4, "killed", tokens=300)

    assert (judge_client(request, sample(outcome, tokens)) is not None) is problem


@pytest.mark.parametrize(("tokens", "problem"), [(4, False), (6, False), (3, True)])
def test_judge_client_lets_a_leaver_see_the_rest_of_its_last_chunk(
    tokens: int, problem: bool
) -> None:
    request = req(1, "leave")  # leaves after 4 tokens

    assert (judge_client(request, sample("left", tokens)) is not None) is problem


@pytest.mark.anyio
async def test_first_tokens_is_set_once_every_killed_turn_has_streamed() -> None:
    gauge = FirstTokens(2)

    gauge.opened()
    first = gauge.all_seen.is_set()
    gauge.closed()
    gauge.opened()

    assert (first, gauge.all_seen.is_set(), gauge.seen, gauge.now) == (False, True, 2, 1)


def test_reconcile_flags_a_client_that_saw_the_wrong_ending() -> None:
    samples = SAMPLES | {0: sample("error_event", 5)}
    rows = [row(0, 10, "0.11"), row(1, 4, "0.1", estimated=True), row(3, 3, "0.1", estimated=True)]

    verdict = reconcile(REQUESTS, samples, LEDGER, rows, price)

    assert verdict.unexpected == ["#0 normal: error_event (wanted done)"]
    assert not verdict.ok


def test_reconcile_prices_an_abandoned_rows_reported_output_and_refuses_a_wrong_flag() -> None:
    reported = abandoned("user-4", 90, "0.11", tokens_out=20, output_unknown=False)
    unflagged = abandoned("user-4", 90, "0.11", tokens_out=20)  # output known, flagged unknown
    mispriced = abandoned("user-4", 90, "0.09", tokens_out=20, output_unknown=False)

    good = reconcile(
        KILLED_REQUESTS, KILLED_SAMPLES, KILLED_LEDGER, [*LIVE_ROWS, reported], price, OWNERS
    )

    assert good.ok, good.as_json()
    assert good.abandoned_tokens_out_stored == 20
    for row in (unflagged, mispriced):
        verdict = reconcile(
            KILLED_REQUESTS, KILLED_SAMPLES, KILLED_LEDGER, [*LIVE_ROWS, row], price, OWNERS
        )
        assert not verdict.ok
