"""The load proof end to end with access tokens that expire while their answers stream."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.procs import Procs
from bench.proof import run_proof
from bench.proof_plan import ProofRequest
from bench.proof_tokens import LEASE_S

pytestmark = pytest.mark.slow

LIFETIME_S = 2
STREAM_TOKENS, DELAY_MS = 60, 100  # 6 s: the token dies at 2 s, the lease renews at 2 and 4 s


def _plan() -> list[ProofRequest]:
    """30 turns over 3 s: answers, clients that leave, a fault mid-stream, one before the head."""
    requests = []
    for i in range(30):
        kind, after, leave_at = "normal", 0, None
        if i % 10 == 3:
            kind, leave_at = "leave", 50
        elif i == 7:
            kind, after = "drop", 45
        elif i == 17:
            kind = "529"
        requests.append(
            ProofRequest(i, kind, STREAM_TOKENS, DELAY_MS, after, leave_at, send_at=0.1 * i)
        )
    return requests


@pytest.mark.anyio
async def test_run_proof_with_tokens_expiring_mid_stream_stores_every_turn_exactly(
    tmp_path: Path,
) -> None:
    plan = _plan()
    results = await run_proof(
        Procs(tmp_path),
        count=0,
        seconds=0,
        seed=0,
        workers=1,
        say=lambda _line: None,
        plan=plan,
        token_lifetime_s=LIFETIME_S,
    )

    verdict, expiring = results["verdict"], results["expiring_tokens"]
    assert verdict["ok"], verdict
    assert expiring["ok"], expiring
    billed = sum(r.billed for r in plan)
    assert (verdict["ledger_billed"], verdict["usage_rows"]) == (billed, billed)
    assert verdict["exact_rows"] == verdict["exact_rows_matching"] >= billed - 4
    assert verdict["exact_cost_stored"] == verdict["exact_cost_billed"]
    # Rows without reported usage (clients that left, the drop) are estimates, never below.
    assert verdict["estimated_cost_stored"] >= verdict["estimated_cost_billed"]
    assert verdict["abandoned_rows"] == expiring["abandoned_rows_of_live_turns"] == 0
    assert expiring["swept_during_run"] == expiring["swept_after_run"] == 0
    assert expiring["tokens_minted"] == len(plan)
    # Every answer that streamed to its end outlived its token and renewed its lease after.
    done = verdict["client_outcomes"]["done"]
    assert expiring["turns_renewed_after_token_expired"] >= done > 20
    assert expiring["reservation_ttl_s"] == LEASE_S
    assert results["spooled_files_left"] == 0
