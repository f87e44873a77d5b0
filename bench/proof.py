"""The load proof: 500 conversations over about a minute against the full stack, with clients
that leave and upstream faults, then every usage row checked against the stand-in's ledger.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
from psycopg.rows import dict_row

from app.config import Settings
from app.domain import Usage
from app.pricing import Pricer
from bench.client import SERVICE, Call, Sample, connector, stream_once
from bench.procs import Procs
from bench.proof_check import reconcile
from bench.proof_plan import MIX, ProofRequest, plan_requests
from bench.stack import Guards, Service, Stack
from bench.world import BenchUser, World, service_body

SETTLE_QUIET_S = 2.0  # the rows stop changing for this long: every write has landed
SETTLE_MAX_S = 60.0


async def _fire(
    session: aiohttp.ClientSession,
    service: Service,
    anon_key: str,
    requests: list[ProofRequest],
    users: list[BenchUser],
) -> dict[int, Sample]:
    loop = asyncio.get_running_loop()
    start = loop.time()
    samples: dict[int, Sample] = {}

    async def one(request: ProofRequest, user: BenchUser) -> None:
        await asyncio.sleep(max(0.0, start + request.send_at - loop.time()))
        call = _call(service, anon_key, user, request)
        samples[request.index] = await stream_once(session, call, SERVICE, timeout=120)

    await asyncio.gather(*(one(r, u) for r, u in zip(requests, users, strict=True)))
    return samples


def _call(service: Service, anon_key: str, user: BenchUser, request: ProofRequest) -> Call:
    headers = {
        "authorization": f"Bearer {user.token}",
        "apikey": anon_key,
        "content-type": "application/json",
    }
    body = service_body(request.text(), user.next_conversation())
    return Call(service.endpoint, headers, body, request.leave_at)


def _rows(dsn: str, user_ids: list[str]) -> list[dict[str, Any]]:
    with psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as conn:
        return conn.execute(
            "select request_id, model, provider, tokens_in, tokens_out, cache_read_tokens,"
            " cache_write_tokens, cost_usd, status, estimated from public.usage_logs"
            " where user_id = any(%s::uuid[])",
            (user_ids,),
        ).fetchall()


async def _settle(dsn: str, user_ids: list[str], standin_url: str, since: float) -> float:
    """Wait until no stand-in stream is open and the usage rows stop changing."""
    began = time.monotonic()
    last, stable_since = -1, time.monotonic()
    async with aiohttp.ClientSession() as session:
        while time.monotonic() - began < SETTLE_MAX_S:
            async with session.get(f"{standin_url}/_ledger", params={"since": since}) as response:
                ledger = await response.json()
            count = len(await asyncio.to_thread(_rows, dsn, user_ids))
            if count != last:
                last, stable_since = count, time.monotonic()
            still_open = any(e["closed_at"] is None for e in ledger)
            if not still_open and time.monotonic() - stable_since >= SETTLE_QUIET_S:
                break
            await asyncio.sleep(0.5)
    return time.monotonic() - began


async def run_proof(
    procs: Procs,
    *,
    count: int,
    seconds: float,
    seed: int,
    workers: int,
    say: Callable[[str], None] = print,  # noqa: T202
) -> dict[str, Any]:
    stack = Stack(procs, procs.run_dir)
    try:
        say(f"starting the LLM stand-in and the local stack in {procs.run_dir}")
        stack.start()
        assert stack.keys is not None
        world = World(stack.superuser_dsn, stack.keys, stack.issuer)
        users = world.ensure_users(count, conversations_each=1)
        service = stack.start_service(workers, Guards())
        requests = plan_requests(count, seconds, seed)
        say(f"streaming {count} conversations over {seconds:.0f}s through {workers} worker(s)")
        since = time.monotonic()
        started = time.monotonic()
        async with aiohttp.ClientSession(connector=connector()) as session:
            samples = await _fire(session, service, stack.status["anon_key"], requests, users)
        streamed_s = time.monotonic() - started
        user_ids = [u.id for u in users]
        settle_s = await _settle(stack.superuser_dsn, user_ids, stack.standin_url, since)
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{stack.standin_url}/_ledger", params={"since": since}) as r:
                ledger = await r.json()
        rows = _rows(stack.superuser_dsn, user_ids)
        spooled = _outbox_files(procs.run_dir)
    finally:
        procs.stop_all()
    pricer = Pricer(Settings(_env_file=None))  # type: ignore[call-arg]

    def price(model: str, usage: Usage) -> Any:
        return pricer.price("anthropic", model, usage).cost_usd

    verdict = reconcile(requests, samples, ledger, rows, price)
    return {
        "count": count,
        "seconds": seconds,
        "seed": seed,
        "workers": workers,
        "mix_per_100": MIX,
        "planned": dict(sorted(_count(r.kind for r in requests).items())),
        "streamed_s": round(streamed_s, 1),
        "settle_s": round(settle_s, 1),
        "spooled_files_left": spooled,
        "verdict": verdict.as_json(),
    }


def _count(kinds: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for kind in kinds:
        out[kind] = out.get(kind, 0) + 1
    return out


def _outbox_files(run_dir: Path) -> int:
    return sum(1 for d in run_dir.glob("outbox-*") for p in d.rglob("*") if p.is_file())
