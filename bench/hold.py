# ruff: noqa: T201 - a benchmark prints its results
"""The full-path hold: many long streams open at once through the real local stack (embedded
PostgreSQL, the Auth and PostgREST stand-ins) and one service worker, for memory per open stream
and errors, each error classified as relay-caused or upstream-caused.

    .venv/bin/python -m bench.hold --json /tmp/hold.json
    .venv/bin/python -m bench.hold --streams 200 --tokens 300 --ramp 8 --direct

The streams start over `--ramp` seconds and each lasts `--tokens` × `--delay-ms` upstream, longer
than the ramp, so all of them are open together for a while (the last round started 1,000 cold at
100 a second and never had them all open; the peak number open is reported). Memory per open
stream is the service's RSS growth over its baseline (after a warm-up) divided by the streams open
at that moment. Errors are split by `bench.outcomes` (a `provider_*` code is upstream-caused,
anything else relay-caused), and the service log's warnings and errors are counted by message
next to them, the evidence for each class.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import uvloop

from bench.client import connector
from bench.outcomes import split
from bench.procs import Procs, stopped_on_signals
from bench.runner import RunSpec, Scenario, direct_target, run, service_target, warm_up
from bench.stack import Guards, Stack
from bench.world import World

_VOLATILE = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|\b\d+(\.\d+)?\b"
)


@dataclass(frozen=True)
class HoldPlan:
    streams: int = 1000
    tokens: int = 1200
    delay_ms: float = 50
    ramp_s: float = 40.0

    @property
    def scenario(self) -> Scenario:
        about = f"{self.tokens} tokens at {1000 / self.delay_ms:.0f} tokens/s, all open at once"
        return Scenario("hold", self.tokens, self.delay_ms, about, 0, self.streams)

    @property
    def all_open_s(self) -> float:
        """How long all streams are open together if none waits for its first token."""
        return self.scenario.stream_s - self.ramp_s


def log_summary(
    lines: Iterable[str], levels: frozenset[str] = frozenset({"WARNING", "ERROR"})
) -> dict[str, int]:
    """The service log's warnings and errors, counted by `LEVEL logger: message` with ids and
    numbers blanked (`#`), so 63 "provider call failed … ConnectError" lines become one entry."""
    counts: Counter[str] = Counter()
    for line in lines:
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(record, dict) or record.get("level") not in levels:
            continue
        message = _VOLATILE.sub("#", str(record.get("msg", "")))[:160]
        counts[f"{record['level']} {record.get('logger', '')}: {message}"] += 1
    return dict(counts.most_common())


def memory(run: dict[str, Any]) -> dict[str, Any]:
    """RSS growth per open stream when the most streams were open (the RSS peak itself may
    come later, when the heap has grown and few streams are left), and the RSS peak."""
    rss = run.get("service_rss_mb") or {}
    most = rss.get("max_open") or 0
    grown_mb = (rss.get("at_max_open") or 0) - (rss.get("baseline") or 0)
    per_stream = round(grown_mb * 1024 / most, 1) if most else None
    return {
        "baseline_mb": rss.get("baseline"),
        "at_most_open_mb": rss.get("at_max_open"),
        "most_open": most,
        "peak_mb": rss.get("peak"),
        "open_at_rss_peak": rss.get("open_at_peak"),
        "kb_per_open_stream": per_stream,
    }


async def hold(procs: Procs, plan: HoldPlan, with_direct: bool) -> dict[str, Any]:
    stack = Stack(procs, procs.run_dir)
    stack.start()
    assert stack.keys is not None
    world = World(stack.superuser_dsn, stack.keys, stack.issuer)
    people = world.ensure_users(plan.streams, conversations_each=2)
    # Every client of the bench comes from 127.0.0.1; production's 1,000 come from as many
    # addresses, so the per-address bound on pending requests must not refuse them here.
    env = {"MAX_PENDING_REQUESTS_PER_CLIENT": str(plan.streams * 2)}
    service = stack.start_service(1, Guards(), log_level="WARNING", env=env)
    out: dict[str, Any] = {"plan": vars(plan) | {"all_open_s": plan.all_open_s}}
    async with aiohttp.ClientSession(connector=connector()) as session:
        through = service_target(stack, service)
        await warm_up(session, through, people, 10)
        if with_direct:
            spec = RunSpec(plan.scenario, plan.streams, direct_target(stack), plan.ramp_s)
            d = await run(session, stack, spec, people, warm=False, keep_samples=True)
            out["direct"] = _summary(d)
        # A refused client waits its Retry-After and tries again, until it holds a stream.
        spec = RunSpec(
            plan.scenario,
            plan.streams,
            through,
            plan.ramp_s,
            honour_retry_after=True,
            refusals_count=False,
        )
        s = await run(session, stack, spec, people, warm=False, keep_samples=True)
    out["service"] = _summary(s) | {"memory": memory(s)}
    log = service.proc.log_path.read_text(errors="replace").splitlines()
    out["service"]["log"] = log_summary(log)
    return out


def _summary(run: dict[str, Any]) -> dict[str, Any]:
    samples = run.pop("samples")
    return run | {"split": split(samples).as_json()}


def report(result: dict[str, Any]) -> str:
    s = result["service"]
    mem, ended = s["memory"], s["split"]
    plan = result["plan"]
    lines = [
        f"hold: {plan['streams']} streams of {plan['tokens']} tokens at {plan['delay_ms']} ms,"
        f" started over {plan['ramp_s']} s (all open together for {plan['all_open_s']:.0f} s"
        " at best)",
        f"most open at once: {mem['most_open']}; RSS {mem['baseline_mb']} → "
        f"{mem['at_most_open_mb']} MB then: {mem['kb_per_open_stream']} KB per open stream"
        f" (RSS peak {mem['peak_mb']} MB with {mem['open_at_rss_peak']} open)",
        f"turns: {ended['done']} done, {ended['refused_503']} refused with 503,"
        f" {ended['error_events']} error events {ended['error_codes']},"
        f" {ended['failed']} failed {ended['failures']}",
        f"errors: {ended['relay_caused_errors']} relay-caused,"
        f" {ended['upstream_caused_errors']} upstream-caused",
        f"TTFT p50 {s['ttft_ms']['p50']} ms, p99 {s['ttft_ms']['p99']} ms;"
        f" load {s['load_avg']['before'][0]:.2f} before, {s['load_avg']['after'][0]:.2f} after",
    ]
    if "direct" in result:
        d = result["direct"]["split"]
        lines.append(
            f"direct (the stand-in alone): {d['done']} done, {d['error_events']} error events,"
            f" {d['failed']} failed {d['failures']}"
        )
    for message, n in list(s["log"].items())[:10]:
        lines.append(f"  log ×{n}: {message}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    summary, _, rest = (__doc__ or "").partition("\n\n")
    parser = argparse.ArgumentParser(
        prog="python -m bench.hold",
        description=summary,
        epilog=rest,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    defaults = HoldPlan()
    parser.add_argument("--streams", type=int, default=defaults.streams)
    parser.add_argument("--tokens", type=int, default=defaults.tokens)
    parser.add_argument("--delay-ms", type=float, default=defaults.delay_ms)
    parser.add_argument("--ramp", type=float, default=defaults.ramp_s, help="seconds")
    parser.add_argument("--direct", action="store_true", help="hold the stand-in directly first")
    parser.add_argument("--json", type=Path, help="write the result here")
    parser.add_argument("--keep", action="store_true", help="keep the run folder (logs)")
    args = parser.parse_args(argv)
    plan = HoldPlan(args.streams, args.tokens, args.delay_ms, args.ramp)
    run_dir = Path(tempfile.mkdtemp(prefix="bench-hold-"))
    procs = Procs(run_dir)
    try:
        with stopped_on_signals(procs):
            result = uvloop.run(hold(procs, plan, args.direct))
    finally:
        if not args.keep:
            shutil.rmtree(run_dir, ignore_errors=True)
    print(report(result))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, default=str))
    ended = result["service"]["split"]
    return 1 if ended["relay_caused_errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
