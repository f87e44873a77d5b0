"""The load proof end to end on a tiny plan: a worker killed mid-stream, its turn abandoned."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest

from bench.procs import Procs
from bench.proof import run_proof
from bench.proof_plan import KILLED_DELAY_MS, KILLED_MIN_TOKENS, ProofRequest

pytestmark = pytest.mark.slow


def _plan() -> list[ProofRequest]:
    normal = [ProofRequest(i, "normal", 20, 5, 0, None, 0.2 * i) for i in range(2)]
    killed = ProofRequest(2, "killed", KILLED_MIN_TOKENS, KILLED_DELAY_MS, 0, None, 0.0)
    return [*normal, killed]


@pytest.mark.anyio
async def test_run_proof_records_the_killed_workers_turn_as_one_abandoned_row(
    tmp_path: Path,
) -> None:
    procs = Procs(tmp_path)
    seen: list[int] = []

    def say(_line: str) -> None:
        seen.extend(p.pid for proc in procs.started for p in proc.tree())

    results = await run_proof(procs, count=0, seconds=0, seed=0, workers=1, say=say, plan=_plan())

    verdict, killed = results["verdict"], results["killed_worker"]
    assert verdict["ok"], verdict
    assert (verdict["killed_requests"], verdict["abandoned_rows"]) == (1, 1)
    assert verdict["abandoned_rows_flagged"] == verdict["abandoned_rows_priced_as_estimated"] == 1
    assert verdict["abandoned_tokens_out_billed"] > 0
    assert (verdict["exact_rows"], verdict["usage_rows"]) == (2, 3)
    assert killed["streams_open_at_kill"] == 1
    assert killed["turn_states"] == {"abandoned": 1}
    assert results["spooled_files_left"] == 0
    assert procs.started == []
    assert not [pid for pid in set(seen) if psutil.pid_exists(pid)]
