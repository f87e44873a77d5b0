"""`make bench`: the stream measured directly against the LLM stand-in and through the service,
side by side in one run, at several concurrencies, with one worker and with two.

The plan is data (`Plan`); `run_bench` starts the processes, creates the users, runs the plan
and returns everything as one JSON-ready dict; `report` turns it into the table and headlines.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from bench.client import connector
from bench.procs import ROOT, Proc, Procs
from bench.report import pair_up
from bench.runner import (
    RunSpec,
    Scenario,
    Target,
    direct_target,
    run,
    service_target,
    warm_up,
)
from bench.stack import Guards, Stack
from bench.world import BenchUser, World

PACKAGES = ("uvicorn", "fastapi", "starlette", "httpx", "aiohttp", "httpx-aiohttp", "uvloop",
            "httptools", "orjson", "supabase", "postgrest")  # fmt: skip


@dataclass(frozen=True)
class Plan:
    """Which scenarios run at which concurrencies, for one worker and for two."""

    scenarios: dict[str, Scenario]
    one_worker: list[tuple[str, int]]
    two_workers: list[tuple[str, int]]
    hold: tuple[str, int] | None  # memory per open stream and the 1,000-stream hold, run first
    workers: tuple[int, ...] = (1, 2)

    def only(self, names: set[str] | None = None, concurrency: set[int] | None = None) -> Plan:
        """The plan restricted to some scenarios (the hold is one) and/or concurrencies."""

        def keep(run: tuple[str, int] | None) -> bool:
            return (
                run is not None
                and (names is None or run[0] in names)
                and (concurrency is None or run[1] in concurrency or run[0] == "hold")
            )

        return replace(
            self,
            one_worker=[run for run in self.one_worker if keep(run)],
            two_workers=[run for run in self.two_workers if keep(run)],
            hold=self.hold if keep(self.hold) else None,
        )

    def with_workers(self, workers: tuple[int, ...]) -> Plan:
        return replace(self, workers=workers)

    @property
    def max_concurrency(self) -> int:
        runs = [*self.one_worker, *self.two_workers, *([self.hold] if self.hold else [])]
        return max(c for _, c in runs)


def full_plan() -> Plan:
    scenarios = {
        "fast": Scenario("fast", 200, 5, "200 tokens at 200 tokens/s (the peers' setup)", 6, 30),
        "realistic": Scenario("realistic", 200, 25, "200 tokens at 40 tokens/s", 12, 6),
        "relay": Scenario("relay", 200, 0, "200 tokens, no delay: pure relay cost", 5, 60),
        "hold": Scenario("hold", 400, 50, "400 tokens at 20 tokens/s, all open at once", 10),
    }
    one = [("fast", c) for c in (1, 10, 50, 100, 500)]
    one += [("realistic", c) for c in (1, 10, 100, 500)]
    one += [("relay", c) for c in (1, 10, 100, 500)]
    two = [("fast", 100), ("fast", 500), ("realistic", 500), ("relay", 100), ("relay", 500)]
    return Plan(scenarios, one, two, ("hold", 1000))


def quick_plan() -> Plan:
    scenarios = {
        "fast": Scenario("fast", 200, 5, "200 tokens at 200 tokens/s", 3, 10),
        "realistic": Scenario("realistic", 60, 25, "60 tokens at 40 tokens/s", 3, 2),
        "relay": Scenario("relay", 200, 0, "200 tokens, no delay", 2, 10),
        "hold": Scenario("hold", 40, 50, "40 tokens at 20 tokens/s, all open at once", 1),
    }
    one = [("fast", 1), ("fast", 10), ("realistic", 10), ("relay", 10)]
    return Plan(scenarios, one, [("fast", 10)], ("hold", 50))


@dataclass
class Options:
    plan: Plan
    procs: Procs
    log_level: str = "INFO"
    guards: Guards = field(default_factory=Guards)
    profile: Path | None = None  # py-spy's collapsed stacks of the one-worker service go here
    say: Callable[[str], None] = print  # noqa: T202 - progress goes to the terminal


def start_profiler(procs: Procs, pid: int, output: Path) -> Proc:
    """py-spy sampling the service (100 Hz, without pausing it); it writes when stopped."""
    py_spy = Path(sys.executable).with_name("py-spy")
    argv = [str(py_spy), "record", "--pid", str(pid), "--format", "raw", "--rate", "100"]
    argv += ["--nonblocking", "--output", str(output)]
    return procs.start("py-spy", argv, dict(os.environ))


def ramp_for(scenario: Scenario, concurrency: int) -> float:
    """Spread the first requests over about one stream's length (0.5–2 s) so the streams are
    staggered as in a steady state; a single client needs none."""
    if concurrency == 1:
        return 0.0
    return min(max(scenario.stream_s, 0.5), 2.0)


async def _run_plan(
    stack: Stack, world: World, options: Options, runs: list[dict[str, Any]]
) -> None:
    plan, say = options.plan, options.say
    users = world.ensure_users(plan.max_concurrency, conversations_each=10)
    world.ensure_users(min(100, len(users)), conversations_each=100)
    world.ensure_users(min(10, len(users)), conversations_each=400)
    direct = direct_target(stack)
    async with aiohttp.ClientSession(connector=connector()) as session:
        for workers in plan.workers:
            todo = plan.one_worker if workers == 1 else plan.two_workers
            hold = plan.hold if workers == 1 else None
            if not todo and hold is None:
                continue
            say(f"starting the service with {workers} worker(s)")
            service = stack.start_service(workers, options.guards, log_level=options.log_level)
            profiler = None
            if options.profile is not None and workers == 1:
                profiler = start_profiler(stack.procs, service.proc.pid, options.profile)
            try:
                through = service_target(stack, service)
                await warm_up(session, through, users, min(10, len(users)))
                if hold is not None:
                    await _hold(session, stack, plan, hold, direct, through, users, runs, say)
                for name, c in todo:
                    for target in (direct, through):
                        spec = RunSpec(
                            plan.scenarios[name], c, target, ramp_for(plan.scenarios[name], c)
                        )
                        runs.append(await run(session, stack, spec, users))
                        say(_progress(runs[-1]))
            finally:
                if profiler is not None:
                    stack.procs.stop(profiler)
                stack.procs.stop(service.proc)


async def _hold(
    session: aiohttp.ClientSession,
    stack: Stack,
    plan: Plan,
    hold: tuple[str, int],
    direct: Target,
    through: Target,
    users: list[BenchUser],
    runs: list[dict[str, Any]],
    say: Callable[[str], None],
) -> None:
    """Hold many long streams open at once; first on the fresh service (memory per stream is
    measured against the RSS before any large run grew the heap). Not warmed at full size.

    The streams start over the first half of one stream's length (1,000 streams of 20 s: 100
    new streams a second, twice the steady rate that holds 1,000 open), so all are open at
    once for the second half; every client sends exactly one request.
    """
    name, c = hold
    scenario = replace(plan.scenarios[name], min_requests=c)
    ramp = scenario.stream_s / 2
    for target in (direct, through):
        spec = RunSpec(scenario, c, target, ramp)
        runs.append(await run(session, stack, spec, users, warm=False))
        say(_progress(runs[-1]))


def _progress(run: dict[str, Any]) -> str:
    return (
        f"  {run['scenario']:<9} c={run['concurrency']:<4} {run['path']:<7}"
        f" w={run['workers'] or '-'} req={run['requests']:<5} err={run['errors']:<3}"
        f" ttft p50={run['ttft_ms']['p50']} p99={run['ttft_ms']['p99']}"
        f" total p50={run['total_ms']['p50']} client cpu={run['client_cpu_share']}"
        f" load={run['load_avg']['before'][0]:.1f}"
    )


def machine() -> dict[str, Any]:
    from app.local.pg_install import find_install  # noqa: PLC0415

    try:
        pg = find_install().version
    except (OSError, RuntimeError, subprocess.CalledProcessError) as exc:
        pg = f"unknown ({exc})"
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    return {
        "nproc": psutil.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "postgresql": pg,
        "platform": platform.platform(),
        "packages": versions,
        "commit": commit,
    }


async def run_bench(options: Options) -> dict[str, Any]:
    """Start everything, run the plan, stop everything (also on Ctrl-C); the results as a dict."""
    started = time.monotonic()
    procs = options.procs
    runs: list[dict[str, Any]] = []
    about = machine()  # the commit the services start from, not the one at the end
    try:
        stack = Stack(procs, procs.run_dir)
        options.say(f"starting the LLM stand-in and the local stack in {procs.run_dir}")
        stack.start()
        assert stack.keys is not None
        world = World(stack.superuser_dsn, stack.keys, stack.issuer)
        await _run_plan(stack, world, options, runs)
    finally:
        procs.stop_all()
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": about,
        "guards": {k: str(v) for k, v in vars(options.guards).items()},
        "scenarios": {k: vars(v) for k, v in options.plan.scenarios.items()},
        "runs": runs,
        "rows": pair_up(runs),
        "elapsed_s": round(time.monotonic() - started, 1),
    }
