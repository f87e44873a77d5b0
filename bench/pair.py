# ruff: noqa: T201 - a benchmark prints its results
"""The seed (Deno) and chat-stream side by side in one run, each relay alone on core 0 against
the Supabase stub, with the issue's table (`bench/run_pair.sh` installs what it needs and runs
this).

    .venv/bin/python -m bench.pair --json /tmp/pair.json
    .venv/bin/python -m bench.pair --code /tmp/main-head -c 100 --json /tmp/pair-c100.json

Per setting (`fast`: 200 tokens at 5 ms each, c = 1, 10, 100, 400; `full`: 200 tokens with no
delay, c=10) each relay gets a fresh process, a direct run to the stand-in just before its own
run (its "added" is against that one), and the stand-in's ledger and the stub's counts over its
run (the c=400 split: done, refused with 503 before money, error events). The relays alternate
within each setting, the seed first. `bench.relay` measures chat-stream checkouts A/B the same way.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import uvloop

from bench.bench import machine
from bench.client import connector
from bench.pair_report import OURS, SEED, loads, markdown
from bench.procs import Procs, stopped_on_signals
from bench.relay import (
    DEFAULT_RUNS,
    OTHERS_CORE,
    Options,
    Relay,
    StubStack,
    _line,
    one_setting,
    service_relay,
    users,
)
from bench.report import table
from bench.seed_relay import deno_binary, start_seed


async def pair(procs: Procs, options: Options, relays: list[Relay]) -> list[dict[str, Any]]:
    stack = StubStack(procs, procs.run_dir)
    stack.start()
    assert stack.keys is not None
    biggest = max(c for _, c in options.runs)
    people = users(stack.keys, stack.issuer, max(biggest, 10))
    results = []
    async with aiohttp.ClientSession(connector=connector()) as session:
        for name, c in options.runs:
            for relay in relays:
                result = await one_setting(session, stack, options, relay, name, c, people)
                results.append(result)
                print(_line(result["row"]), flush=True)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    summary, _, rest = (__doc__ or "").partition("\n\n")
    parser = argparse.ArgumentParser(
        prog="python -m bench.pair",
        description=summary,
        epilog=rest,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--code", type=Path, default=Path("."), help="chat-stream's checkout")
    parser.add_argument("-c", "--concurrency", type=int, nargs="+", help="fast at these only")
    parser.add_argument("--only", nargs="+", choices=["fast", "full"])
    parser.add_argument("--relays", nargs="+", choices=[SEED, OURS], default=[SEED, OURS])
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--keep", action="store_true", help="keep the run folder (logs)")
    args = parser.parse_args(argv)
    runs = list(DEFAULT_RUNS)
    if args.concurrency:
        runs = [r for r in runs if r[0] != "fast" or r[1] in args.concurrency]
    if args.only:
        runs = [r for r in runs if r[0] in args.only]
    deno_binary()  # fail before starting anything when `npm ci --prefix bench` was not run
    os.sched_setaffinity(0, {OTHERS_CORE})
    options = Options([args.code.resolve()], runs, hold=0, profile=None)
    every = {SEED: Relay(SEED, start_seed), OURS: service_relay(OURS, args.code.resolve(), {})}
    relays = [every[name] for name in args.relays]
    run_dir = Path(tempfile.mkdtemp(prefix="bench-pair-"))
    procs = Procs(run_dir)
    started = datetime.now(UTC).isoformat(timespec="seconds")
    load_before = os.getloadavg()
    try:
        with stopped_on_signals(procs):
            results = uvloop.run(pair(procs, options, relays))
    finally:
        if not args.keep:
            shutil.rmtree(run_dir, ignore_errors=True)
    rows = [r["row"] for r in results]
    print()
    print(table(rows))
    print()
    print(markdown(rows))
    print(f"\nstarted {started}, load before {_load(load_before)}, after {_load(os.getloadavg())}")
    print(f"1-minute load before each relay run: {loads(rows)}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        out = {"date": started, "machine": machine(), "rows": rows, "results": results}
        args.json.write_text(json.dumps(out, indent=2, default=str))
    return 0


def _load(load: tuple[float, float, float]) -> str:
    return "/".join(f"{x:.2f}" for x in load)


if __name__ == "__main__":
    sys.exit(main())
