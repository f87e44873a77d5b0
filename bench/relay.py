# ruff: noqa: T201 - a benchmark prints its results
"""Relay-only benchmark: the service against a Supabase stub, so only the relay is measured.

The service (`chat-stream serve`, one worker) runs pinned to core 0; the LLM stand-in, the
Supabase stub (`bench.supabase_stub`) and this load generator share core 1. Each setting runs the
direct path (straight to the stand-in) and then the service path, in the same layout; with several
`--code` checkouts, each gets its own service and its own direct run, back to back (A/B).

    .venv/bin/python -m bench.relay -c 1 100 400
    .venv/bin/python -m bench.relay --code /tmp/main-head . -c 1 100 400 --json out.json
    .venv/bin/python -m bench.relay --only hold --hold 1000

Settings: `fast` is 200 tokens at 200 tokens/s (c = 1, 10, 100, 400), `full` 200 tokens with no
delay (c=10), `hold` 400 tokens at 20 tokens/s, all streams open at once (memory per stream).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
import uvloop

from app.local.keys import LocalKeys
from app.local.postgres import free_port
from bench.bench import ramp_for
from bench.client import connector
from bench.outcomes import count_delta, split
from bench.procs import Procs, clean_env, python, stopped_on_signals
from bench.report import compare, table
from bench.runner import RunSpec, Scenario, direct_target, run, service_target, warm_up
from bench.stack import Guards, Service, Stack
from bench.world import TOKEN_LIFETIME_S, BenchUser

SERVICE_CORE, OTHERS_CORE = 0, 1
FAST = Scenario("fast", 200, 5, "200 tokens at 200 tokens/s", 6, 30)
FULL = Scenario("full", 200, 0, "200 tokens, no delay (full speed)", 5, 60)
HOLD = Scenario("hold", 400, 50, "400 tokens at 20 tokens/s, all open at once", 10)
DEFAULT_RUNS = [("fast", 1), ("fast", 10), ("fast", 100), ("fast", 400), ("full", 10)]


def pinned(core: int) -> tuple[str, ...]:
    return ("taskset", "-c", str(core))


class StubStack(Stack):
    """The stand-in and the Supabase stub instead of the local stack (`dev` is the stub)."""

    def start(self, timeout: float = 60.0) -> None:
        keys_dir = self.run_dir / "keys"
        self.keys = LocalKeys.load_or_create(keys_dir)
        llm_port, stub_port = free_port(), free_port()
        others = pinned(OTHERS_CORE)
        self.standin = self.procs.start(
            "standin",
            [*others, python(), "-m", "app.local.llm.api", "--port", str(llm_port)]
            + ["--log-level", "warning"],
            clean_env(),
        )
        self.dev = self.procs.start(
            "stub",
            [*others, python(), "-m", "bench.supabase_stub", "--port", str(stub_port)]
            + ["--keys-dir", str(keys_dir)],
            clean_env(),
        )
        self.standin_url = f"http://127.0.0.1:{llm_port}"
        self.api_url = f"http://127.0.0.1:{stub_port}"
        self.status = {
            "anon_key": self.keys.anon_key,
            "service_role_key": self.keys.service_role_key,
        }
        self.service_prefix = pinned(SERVICE_CORE)
        self.standin.wait_http(f"{self.standin_url}/_ledger", timeout)
        self.dev.wait_http(f"{self.api_url}/health", timeout)

    async def counts(self, session: aiohttp.ClientSession) -> dict[str, int]:
        """The stub's call counts so far (`bench.supabase_stub`: `rpc:<name>`, `insert:<table>`)."""
        async with session.get(f"{self.api_url}/_counts") as response:
            answer: dict[str, int] = await response.json()
            return answer

    async def upstream_calls(self, session: aiohttp.ClientSession, since: float) -> int:
        """Requests the stand-in received from `since` (a `time.monotonic()`) on."""
        async with session.get(f"{self.standin_url}/_ledger", params={"since": since}) as response:
            return len(await response.json())


def users(keys: LocalKeys, issuer: str, count: int) -> list[BenchUser]:
    """Users the stub never checks: signed tokens and made-up conversation ids."""
    out = []
    for _ in range(count):
        user_id = str(uuid.uuid4())
        token = keys.user_access_token(user_id=user_id, issuer=issuer, expires_in=TOKEN_LIFETIME_S)
        out.append(BenchUser(user_id, token, [str(uuid.uuid4()) for _ in range(20)]))
    return out


@dataclass
class Options:
    codes: list[Path]
    runs: list[tuple[str, int]]
    hold: int
    profile: Path | None
    env: dict[str, str] = field(default_factory=dict)  # added to the service's settings
    settle_s: float = 1.0


def scenario_for(name: str, hold: int) -> Scenario:
    if name == "hold":
        return replace(HOLD, min_requests=hold)
    return {"fast": FAST, "full": FULL}[name]


async def profiled(pid: int, output: Path, seconds: int = 10) -> asyncio.subprocess.Process:
    py_spy = Path(sys.executable).with_name("py-spy")
    argv = [*pinned(OTHERS_CORE), str(py_spy), "record", "-p", str(pid), "-d", str(seconds)]
    argv += ["-r", "200", "-f", "raw", "--nonblocking", "-o", str(output)]
    return await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )


@dataclass(frozen=True)
class Relay:
    """One relay under test: its label and how to start it on the stub stack (fresh per
    setting, so no setting inherits another's heap or connections)."""

    label: str
    start: Callable[[StubStack], Service]


def service_relay(label: str, code: Path, env: dict[str, str]) -> Relay:
    """`chat-stream serve`, one worker, from the checkout at `code`."""

    def start(stack: StubStack) -> Service:
        return stack.start_service(1, Guards(), code=code, log_level="WARNING", env=env)

    return Relay(label, start)


async def one_setting(
    session: aiohttp.ClientSession,
    stack: StubStack,
    options: Options,
    relay: Relay,
    name: str,
    c: int,
    people: list[BenchUser],
) -> dict[str, Any]:
    """The direct run, then the relay's run, of one setting; with what the relay's run cost
    upstream (the stand-in's ledger) and wrote (the stub's counts)."""
    scenario = scenario_for(name, options.hold)
    ramp = scenario.stream_s / 2 if name == "hold" else ramp_for(scenario, c)
    warm = name != "hold"
    service = relay.start(stack)
    try:
        through = service_target(stack, service)
        if warm:
            await warm_up(session, through, people, min(c, 50))
        await asyncio.sleep(options.settle_s)
        direct_spec = RunSpec(scenario, c, direct_target(stack), ramp)
        d = await run(session, stack, direct_spec, people, keep_samples=True)
        if warm:
            await warm_up(session, through, people, c)
        spy = None
        if options.profile is not None and c == 100 and name == "fast":
            out = options.profile / f"{relay.label}-{name}-c{c}.txt"
            spy = await profiled(service.proc.pid, out)
        spec = RunSpec(scenario, c, through, ramp, honour_retry_after=True)
        counts, since = await stack.counts(session), time.monotonic()
        s = await run(session, stack, spec, people, warm=False, keep_samples=True)
        upstream_calls = await stack.upstream_calls(session, since)
        writes = count_delta(counts, await stack.counts(session))
        if spy is not None:
            await spy.wait()
    finally:
        stack.procs.stop(service.proc)
    ended = split(s.pop("samples"), upstream_calls=upstream_calls, writes=writes)
    d.pop("samples")
    row = compare(d, s)
    row |= {
        "code": relay.label,
        "outcomes": s["outcomes"],
        "split": ended.as_json(),
        "writes": writes,
        "service_cpu_s": s["cpu_s"].get("service"),
        "upstream_cpu_ms_per_1k_tokens": _per_1k(s["cpu_s"].get("standin"), s["tokens"]),
        "upstream_cpu_ms_per_1k_tokens_direct": _per_1k(d["cpu_s"].get("standin"), d["tokens"]),
        "stub_cpu_ms_per_1k_tokens": _per_1k(s["cpu_s"].get("stack"), s["tokens"]),
        "service_kb_per_open_stream": s.get("service_kb_per_open_stream"),
        "peak_open_streams": s.get("peak_open_streams"),
        "load_avg": s["load_avg"],
    }
    return {"row": row, "direct": d, "service": s}


def _per_1k(cpu_s: float | None, tokens: int) -> float | None:
    if cpu_s is None or tokens <= 0:
        return None
    return round(cpu_s * 1e6 / tokens, 2)


async def bench(procs: Procs, options: Options) -> list[dict[str, Any]]:
    stack = StubStack(procs, procs.run_dir)
    stack.start()
    assert stack.keys is not None
    biggest = max(c for _, c in options.runs)
    people = users(stack.keys, stack.issuer, max(biggest, 10))
    results = []
    labels = _labels(options.codes)
    relays = [
        service_relay(label, code, options.env)
        for label, code in zip(labels, options.codes, strict=True)
    ]
    async with aiohttp.ClientSession(connector=connector()) as session:
        for name, c in options.runs:
            for relay in relays:
                result = await one_setting(session, stack, options, relay, name, c, people)
                results.append(result)
                print(_line(result["row"]), flush=True)
    return results


def _labels(codes: list[Path]) -> list[str]:
    names = [code.name or str(code) for code in codes]
    return names if len(set(names)) == len(names) else [f"{i}:{n}" for i, n in enumerate(names)]


def _line(r: dict[str, Any]) -> str:
    load = r["load_avg"]["before"]
    return (
        f"[{r['code']}] {r['scenario']} c={r['concurrency']} req={r['requests']}"
        f" outcomes={r['outcomes']} TTFT added p50={r['ttft_p50_added']}"
        f" p99={r['ttft_p99_added']} total ratio p50={r['total_p50_ratio']}"
        f" cpu/1k service={r['service_cpu_ms_per_1k_tokens']}"
        f" upstream={r['upstream_cpu_ms_per_1k_tokens']}"
        f" (direct run {r['upstream_cpu_ms_per_1k_tokens_direct']})"
        f" KB/stream={r['service_kb_per_open_stream']} open={r['peak_open_streams']}"
        f" load={load[0]:.2f}/{load[1]:.2f}/{load[2]:.2f}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    summary, _, rest = (__doc__ or "").partition("\n\n")
    parser = argparse.ArgumentParser(
        prog="python -m bench.relay",
        description=summary,
        epilog=rest,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--code", type=Path, nargs="+", default=[Path(".")])
    parser.add_argument("-c", "--concurrency", type=int, nargs="+", help="fast at these only")
    parser.add_argument("--only", nargs="+", choices=["fast", "full", "hold"])
    parser.add_argument("--hold", type=int, default=1000, help="streams the hold opens at once")
    parser.add_argument("--profile", type=Path, help="py-spy the service at fast c=100 into DIR")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument(
        "--env", nargs="+", default=[], metavar="KEY=VALUE", help="service settings to add"
    )
    parser.add_argument("--keep", action="store_true", help="keep the run folder (logs)")
    args = parser.parse_args(argv)
    runs = list(DEFAULT_RUNS)
    if args.concurrency:
        runs = [r for r in runs if r[0] != "fast" or r[1] in args.concurrency]
    if args.only:
        runs = [r for r in runs if r[0] in args.only]
        if "hold" in args.only:
            runs.append(("hold", args.hold))
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    os.sched_setaffinity(0, {OTHERS_CORE})
    env = dict(item.partition("=")[::2] for item in args.env)
    options = Options([c.resolve() for c in args.code], runs, args.hold, args.profile, env)
    run_dir = Path(tempfile.mkdtemp(prefix="bench-relay-"))
    procs = Procs(run_dir)
    try:
        with stopped_on_signals(procs):
            results = uvloop.run(bench(procs, options))
    finally:
        if not args.keep:
            shutil.rmtree(run_dir, ignore_errors=True)
    rows = [r["row"] for r in results]
    print(table(rows))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
