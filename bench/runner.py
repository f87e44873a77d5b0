"""One measured run: `concurrency` clients streaming one scenario through one path (directly
against the LLM stand-in, or through the service), with the CPU and memory of every process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bench.client import ANTHROPIC, SERVICE, Call, LoopResult, OpenStreams, Wire, closed_loop
from bench.procs import Proc
from bench.stack import STANDIN_KEY, Service, Stack
from bench.stats import per_thousand, summarize_ms
from bench.world import BenchUser, direct_body, message, service_body

SAMPLE_EVERY_S = 0.2
ANTHROPIC_HEADERS = {
    "x-api-key": STANDIN_KEY,
    "anthropic-version": "2023-06-01",
    "content-type": "application/json",
}
PROMPT = "I keep putting off my thesis. Where do I even start?"


@dataclass(frozen=True)
class Scenario:
    name: str
    tokens: int
    delay_ms: float
    about: str
    seconds: float  # how long new requests keep starting
    min_requests: int = 0  # at least this many (percentiles need samples at low concurrency)

    @property
    def stream_s(self) -> float:
        """How long one stream takes upstream, at the least."""
        return self.tokens * self.delay_ms / 1000

    def text(self, **extra: object) -> str:
        return message(PROMPT, tokens=self.tokens, delay_ms=self.delay_ms, **extra)


@dataclass
class Peak:
    """The highest resident memory seen in a run and the open streams at that moment."""

    rss_bytes: int = 0
    open_streams: int = 0
    max_open: int = 0
    rss_at_max_open: int = 0  # the resident memory when the most streams were open


class Measured:
    """What the processes under test spent during a run (CPU deltas, peak memory)."""

    def __init__(self, procs: dict[str, Proc | None]) -> None:
        self.procs = {name: p for name, p in procs.items() if p is not None}
        self.cpu: dict[str, float] = {}
        self.peaks: dict[str, Peak] = {name: Peak() for name in self.procs}
        self.baseline_rss: dict[str, int] = {}

    @contextlib.asynccontextmanager
    async def during(self, gauge: OpenStreams) -> AsyncIterator[None]:
        before = {name: p.usage() for name, p in self.procs.items()}
        self.baseline_rss = {name: u.rss_bytes for name, u in before.items()}
        sampler = asyncio.ensure_future(self._sample(gauge))
        try:
            yield
        finally:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
            for name, proc in self.procs.items():
                after = proc.usage()
                self.cpu[name] = after.cpu_s - before[name].cpu_s
                self._note(name, after.rss_bytes, gauge)

    async def _sample(self, gauge: OpenStreams) -> None:
        while True:
            await asyncio.sleep(SAMPLE_EVERY_S)
            for name, proc in self.procs.items():
                self._note(name, proc.usage().rss_bytes, gauge)

    def _note(self, name: str, rss: int, gauge: OpenStreams) -> None:
        peak = self.peaks[name]
        if gauge.now > peak.max_open or (gauge.now == peak.max_open and rss > peak.rss_at_max_open):
            peak.max_open, peak.rss_at_max_open = gauge.now, rss
        if rss > peak.rss_bytes:
            peak.rss_bytes, peak.open_streams = rss, gauge.now


@dataclass
class Target:
    """One path to stream through: its wire and how to build a request for a user."""

    path: str  # "direct" | "service"
    wire: Wire
    build: Callable[[BenchUser, str], Call]
    service: Service | None = None


def direct_target(stack: Stack) -> Target:
    url = f"{stack.standin_url}/v1/messages"

    def build(user: BenchUser, text: str) -> Call:
        return Call(url, ANTHROPIC_HEADERS, direct_body(text, user.id))

    return Target("direct", ANTHROPIC, build)


def service_target(stack: Stack, service: Service) -> Target:
    anon = stack.status["anon_key"]

    def build(user: BenchUser, text: str) -> Call:
        headers = {
            "authorization": f"Bearer {user.token}",
            "apikey": anon,
            "content-type": "application/json",
        }
        return Call(service.endpoint, headers, service_body(text, user.next_conversation()))

    return Target("service", SERVICE, build, service)


@dataclass
class RunSpec:
    scenario: Scenario
    concurrency: int
    target: Target
    ramp_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    honour_retry_after: bool = False
    refusals_count: bool = True  # False: a refused request does not count towards min_requests


async def warm_up(
    session: aiohttp.ClientSession, target: Target, users: list[BenchUser], concurrency: int
) -> None:
    """Open the keep-alive connections a run will use (client → path → upstream) first."""
    text = message(PROMPT, tokens=1)
    calls = [target.build(users[i], text) for i in range(concurrency)]
    await closed_loop(
        session,
        lambda w, _k: calls[w],
        target.wire,
        concurrency=concurrency,
        seconds=0,
        min_requests=concurrency,
        ramp_s=min(1.0, concurrency / 500),
        timeout=30,
    )


async def run(
    session: aiohttp.ClientSession,
    stack: Stack,
    spec: RunSpec,
    users: list[BenchUser],
    *,
    warm: bool = True,
    keep_samples: bool = False,
) -> dict[str, Any]:
    """One measured run; with `keep_samples` the result also holds each request's `Sample`
    under "samples" (not JSON: pop it before writing the result out)."""
    scenario, c, target = spec.scenario, spec.concurrency, spec.target
    if warm:
        await warm_up(session, target, users, c)
    text = scenario.text()
    gauge = OpenStreams()
    measured = Measured(
        {
            "service": target.service.proc if target.service else None,
            "standin": stack.standin,
            "stack": stack.dev,
        }
    )
    load_before = os.getloadavg()
    async with measured.during(gauge):
        result = await closed_loop(
            session,
            lambda w, _k: target.build(users[w], text),
            target.wire,
            concurrency=c,
            seconds=scenario.seconds,
            min_requests=scenario.min_requests,
            ramp_s=spec.ramp_s,
            timeout=scenario.stream_s + 60,
            max_seconds=scenario.seconds * 6 + 60,
            gauge=gauge,
            honour_retry_after=spec.honour_retry_after,
            refusals_count=spec.refusals_count,
        )
    out = record(spec, result, measured, load_before, os.getloadavg())
    if keep_samples:
        out["samples"] = result.samples
    return out


def record(
    spec: RunSpec,
    result: LoopResult,
    measured: Measured,
    load_before: tuple[float, float, float],
    load_after: tuple[float, float, float],
) -> dict[str, Any]:
    samples = result.samples
    outcomes = Counter(s.outcome for s in samples)
    tokens = sum(s.tokens for s in samples)
    service_cpu = measured.cpu.get("service")
    service_peak = measured.peaks.get("service")
    target = spec.target
    out: dict[str, Any] = {
        "scenario": spec.scenario.name,
        "path": target.path,
        "workers": target.service.workers if target.service else None,
        "concurrency": spec.concurrency,
        "requests": len(samples),
        "errors": sum(n for outcome, n in outcomes.items() if outcome != "done"),
        "outcomes": dict(outcomes),
        "ttft_ms": summarize_ms(s.ttft for s in samples).as_json(),
        "total_ms": summarize_ms(s.total for s in samples if s.ok).as_json(),
        "tokens": tokens,
        "wall_s": round(result.wall_s, 3),
        "tokens_per_s": round(tokens / result.wall_s, 1) if result.wall_s else None,
        "client_cpu_s": round(result.client_cpu_s, 3),
        "client_cpu_share": round(result.client_cpu_s / result.wall_s, 3)
        if result.wall_s
        else None,
        "cpu_s": {name: round(cpu, 3) for name, cpu in measured.cpu.items()},
        "peak_open_streams": max((p.max_open for p in measured.peaks.values()), default=0),
        "load_avg": {"before": load_before, "after": load_after},
    }
    if service_cpu is not None:
        cpu_ms = per_thousand(service_cpu * 1000, tokens)
        out["service_cpu_ms_per_1k_tokens"] = round(cpu_ms, 2) if cpu_ms is not None else None
    if service_peak is not None:
        baseline = measured.baseline_rss.get("service", 0)
        out["service_rss_mb"] = {
            "baseline": round(baseline / 2**20, 1),
            "peak": round(service_peak.rss_bytes / 2**20, 1),
            "open_at_peak": service_peak.open_streams,
            "at_max_open": round(service_peak.rss_at_max_open / 2**20, 1),
            "max_open": service_peak.max_open,
        }
        if service_peak.max_open:  # an upper bound: the peak over the most streams held at once
            per_stream = (service_peak.rss_bytes - baseline) / service_peak.max_open
            out["service_kb_per_open_stream"] = round(per_stream / 1024, 1)
    return out | spec.extra
