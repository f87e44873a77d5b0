"""A tiny benchmark run end to end: separate processes, a table row, everything stopped after."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest

from bench.bench import Options, Plan, run_bench
from bench.procs import Procs
from bench.report import headlines
from bench.runner import Scenario

pytestmark = pytest.mark.slow


@pytest.mark.anyio
async def test_run_bench_measures_both_paths_and_stops_every_process(tmp_path: Path) -> None:
    plan = Plan(
        scenarios={
            "fast": Scenario("fast", 20, 5, "20 tokens at 200 tokens/s", 0.5, 4),
            "hold": Scenario("hold", 20, 50, "20 tokens at 20 tokens/s", 0.5),
        },
        one_worker=[("fast", 2)],
        two_workers=[],
        hold=("hold", 5),
        workers=(1,),
    )
    procs = Procs(tmp_path)
    seen: list[int] = []
    messages: list[str] = []

    def say(line: str) -> None:
        messages.append(line)
        seen.extend(p.pid for proc in procs.started for p in proc.tree())

    results = await run_bench(Options(plan=plan, procs=procs, log_level="WARNING", say=say))

    (row,) = [r for r in results["rows"] if r["scenario"] == "fast"]
    assert (row["concurrency"], row["workers"], row["errors"]) == (2, 1, 0)
    assert row["ttft_p50_service"] > 0 and row["service_cpu_ms_per_1k_tokens"] > 0
    lines = headlines(results["rows"], results["runs"])
    assert lines["hold_errors"] == 0 and lines["kb_per_open_stream"] is not None
    assert seen and procs.started == []
    assert not [pid for pid in set(seen) if psutil.pid_exists(pid)]
