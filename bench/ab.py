"""A/B of two copies of the code on one stack: services from each, alternated, same scenario.

How the tuning changes were judged: copy the tree, change one thing in the copy, and run

    .venv/bin/python -m bench.ab /tmp/before-copy . --tokens 200 --delay-ms 5 -c 100

Each round starts one service per variant (in alternating order), warms it, runs the direct
path and then the service path, and stops it; the summary is the median over rounds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import uvloop

from bench.bench import ramp_for
from bench.client import connector
from bench.procs import Procs, stopped_on_signals
from bench.report import compare
from bench.runner import RunSpec, Scenario, direct_target, run, service_target, warm_up
from bench.stack import Guards, Stack
from bench.world import World

KEYS = (
    "ttft_p50_added",
    "ttft_p99_added",
    "total_p50_ratio",
    "service_cpu_ms_per_1k_tokens",
    "service_cpu_ms_per_request",
    "requests",
    "errors",
)


async def ab(
    procs: Procs, variants: dict[str, Path], scenario: Scenario, c: int, rounds: int
) -> dict[str, list[dict[str, Any]]]:
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    stack = Stack(procs, procs.run_dir)
    stack.start()
    assert stack.keys is not None
    users = World(stack.superuser_dsn, stack.keys, stack.issuer).ensure_users(max(c, 10), 200)
    direct = direct_target(stack)
    async with aiohttp.ClientSession(connector=connector()) as session:
        for index in range(rounds):
            order = list(variants) if index % 2 == 0 else list(reversed(variants))
            for name in order:
                service = stack.start_service(1, Guards(), code=variants[name])
                try:
                    through = service_target(stack, service)
                    await warm_up(session, through, users, min(c, 50))
                    ramp = ramp_for(scenario, c)
                    d = await run(session, stack, RunSpec(scenario, c, direct, ramp), users)
                    s = await run(session, stack, RunSpec(scenario, c, through, ramp), users)
                    row = compare(d, s)
                    row["service_cpu_ms_per_request"] = round(
                        s["cpu_s"]["service"] * 1000 / max(s["requests"], 1), 2
                    )
                    results[name].append(row)
                    sys.stdout.write(f"{name} round {index}: {_pick(row)}\n")
                finally:
                    procs.stop(service.proc)
    return results


def _pick(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in (*KEYS, "load_1m")}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ab", description=__doc__.split("\n\n")[0], epilog=__doc__
    )
    parser.add_argument("a", type=Path, help="checkout A (the folder holding app/)")
    parser.add_argument("b", type=Path, help="checkout B")
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--delay-ms", type=float, default=5)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("-c", "--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    scenario = Scenario("ab", args.tokens, args.delay_ms, "A/B", args.seconds)
    variants = {"A": args.a.resolve(), "B": args.b.resolve()}
    procs = Procs(Path(tempfile.mkdtemp(prefix="bench-ab-")))
    with stopped_on_signals(procs):
        results = uvloop.run(ab(procs, variants, scenario, args.concurrency, args.rounds))
    for name, rows in results.items():
        medians = {
            k: statistics.median(v) if (v := [r[k] for r in rows if r[k] is not None]) else None
            for k in KEYS
        }
        sys.stdout.write(f"{name} median: {medians}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
