# ruff: noqa: T201 - a command line prints its results
"""The command lines of `bench/stream.py` and `bench/load_proof.py` (kept thin there)."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import uvloop

from bench.bench import Options, full_plan, quick_plan, run_bench
from bench.procs import Procs, stopped_on_signals
from bench.proof import run_proof
from bench.report import headlines, hold_line, table


def _parser(doc: str) -> argparse.ArgumentParser:
    summary, _, rest = doc.partition("\n\n")
    parser = argparse.ArgumentParser(
        prog="python -m bench.stream",
        description=summary,
        epilog=rest,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="a small run (about a minute)")
    parser.add_argument("--json", type=Path, help="write the full results here")
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[1, 2],
        choices=[1, 2],
        help="service worker counts to run (default: 1 2)",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="SCENARIO",
        help="run only these scenarios (fast, realistic, relay, hold)",
    )
    parser.add_argument(
        "--concurrency", type=int, nargs="+", help="run only these concurrencies (and the hold)"
    )
    parser.add_argument("--hold", type=int, help="streams the hold opens at once (default 1000)")
    parser.add_argument(
        "--log-level", default="INFO", help="the service's LOG_LEVEL (default INFO, as production)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the run folder (logs, database)")
    parser.add_argument(
        "--profile", type=Path, help="py-spy the one-worker service; collapsed stacks to this file"
    )
    return parser


def main(argv: Sequence[str] | None, *, doc: str) -> int:
    args = _parser(doc).parse_args(argv)
    plan = quick_plan() if args.quick else full_plan()
    if args.only or args.concurrency:
        plan = plan.only(
            set(args.only) if args.only else None,
            set(args.concurrency) if args.concurrency else None,
        )
    plan = plan.with_workers(tuple(args.workers))
    if args.hold is not None and plan.hold is not None:
        plan = replace(plan, hold=(plan.hold[0], args.hold))
    run_dir = Path(tempfile.mkdtemp(prefix="bench-stream-"))
    procs = Procs(run_dir)
    options = Options(plan=plan, procs=procs, log_level=args.log_level, profile=args.profile)
    try:
        with stopped_on_signals(procs):
            results = uvloop.run(run_bench(options))
    except KeyboardInterrupt:
        print("interrupted; every process was stopped", file=sys.stderr)
        return 130
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        print(f"logs kept in {run_dir}", file=sys.stderr)
        return 1
    results["command"] = " ".join(["python -m bench.stream", *(argv or sys.argv[1:])])
    results["headlines"] = headlines(results["rows"], results["runs"])
    print()
    print(table(results["rows"]))
    for run in results["runs"]:
        if run["scenario"] == "hold":
            print(hold_line(run))
    print(json.dumps(results["headlines"], indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
        print(f"wrote {args.json}")
    if args.keep:
        print(f"run folder kept: {run_dir}")
    else:
        shutil.rmtree(run_dir, ignore_errors=True)
    return 0


def _proof_parser(doc: str) -> argparse.ArgumentParser:
    summary, _, rest = doc.partition("\n\n")
    parser = argparse.ArgumentParser(
        prog="python -m bench.load_proof",
        description=summary,
        epilog=rest,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--count", type=int, default=500, help="conversations (default 500)")
    parser.add_argument("--seconds", type=float, default=60.0, help="spread over (default 60)")
    parser.add_argument("--seed", type=int, default=7, help="random seed of the mix (default 7)")
    parser.add_argument("--workers", type=int, default=1, choices=[1, 2])
    parser.add_argument(
        "--token-lifetime",
        type=int,
        metavar="SECONDS",
        help="each access token stays valid this long after its request is sent, then expires"
        " while the answer streams (answers last at least twice as long)",
    )
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--keep", action="store_true", help="keep the run folder (logs, database)")
    return parser


def proof_main(argv: Sequence[str] | None, *, doc: str) -> int:
    args = _proof_parser(doc).parse_args(argv)
    run_dir = Path(tempfile.mkdtemp(prefix="load-proof-"))
    procs = Procs(run_dir)
    try:
        with stopped_on_signals(procs):
            results = uvloop.run(
                run_proof(
                    procs,
                    count=args.count,
                    seconds=args.seconds,
                    seed=args.seed,
                    workers=args.workers,
                    token_lifetime_s=args.token_lifetime,
                )
            )
    except KeyboardInterrupt:
        print("interrupted; every process was stopped", file=sys.stderr)
        return 130
    except RuntimeError as exc:
        print(f"error: {exc}\nlogs kept in {run_dir}", file=sys.stderr)
        return 1
    results["command"] = " ".join(["python -m bench.load_proof", *(argv or sys.argv[1:])])
    verdict = results["verdict"]
    ok = verdict["ok"] and results["expiring_tokens"].get("ok", True)
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    if args.keep or not ok:
        print(f"run folder kept: {run_dir}")
    else:
        shutil.rmtree(run_dir, ignore_errors=True)
    print("load proof: " + ("PASSED" if ok else "FAILED"))
    return 0 if ok else 1
