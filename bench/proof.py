"""The load proof: 500 conversations over about a minute against the full stack, with clients
that leave and upstream faults, then every usage row checked against the stand-in's ledger.

A planned share of slow turns goes to a second, doomed service (`chat-stream serve` with a short
lease, RESERVATION_TTL_SECONDS). Once each of them is mid-stream, the proof kills that service's
process group with SIGKILL, waits (bounded) until their leases have run out, and calls
`rpc/chat_sweep` with the service role key: each killed turn must then be exactly one
`abandoned` usage row, reconciled separately from the rows the live service wrote.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
from psycopg.rows import dict_row

from app.config import Settings
from app.core.domain import Usage
from app.core.pricing import Pricer
from bench.client import SERVICE, Call, OpenStreams, Sample, connector, stream_once
from bench.procs import Procs
from bench.proof_check import is_abandoned, reconcile
from bench.proof_plan import MIX, ProofRequest, plan_requests
from bench.proof_tokens import LEASE_S as TOKENS_LEASE_S
from bench.proof_tokens import ExpiringTokens
from bench.stack import Guards, Service, Stack
from bench.world import BenchUser, World, service_body

SETTLE_QUIET_S = 2.0  # the rows stop changing for this long: every write has landed
SETTLE_MAX_S = 60.0
DOOMED_LEASE_S = 10  # the doomed service's RESERVATION_TTL_SECONDS
FIRST_TOKENS_MAX_S = 60.0  # the kill waits at most this long for the killed turns' first tokens
KILL_AFTER_S = 5.0  # then lets them stream this long (they last 30 s or more): output to lose
LEASE_MARGIN_S = 30.0  # beyond the lease, for the leases to run out on a loaded machine


class FirstTokens(OpenStreams):
    """Open streams, and an event set once `expected` of them have seen their first token."""

    def __init__(self, expected: int) -> None:
        super().__init__()
        self.expected = expected
        self.seen = 0
        self.all_seen = asyncio.Event()

    def opened(self) -> None:
        super().opened()
        self.seen += 1
        if self.seen >= self.expected:
            self.all_seen.set()


@dataclass
class Doomed:
    """The service the killed turns stream through, and what the kill found."""

    service: Service
    first_tokens: FirstTokens
    killed_at_s: float | None = None  # seconds from the first request
    streams_open_at_kill: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "reservation_ttl_s": DOOMED_LEASE_S,
            "killed_turns_planned": self.first_tokens.expected,
            "first_tokens_seen_at_kill": self.first_tokens.seen,
            "streams_open_at_kill": self.streams_open_at_kill,
            "killed_at_s": self.killed_at_s,
        }


async def _fire(
    session: aiohttp.ClientSession,
    service: Service,
    doomed: Doomed | None,
    anon_key: str,
    requests: list[ProofRequest],
    users: list[BenchUser],
    tokens: ExpiringTokens | None = None,
) -> dict[int, Sample]:
    """Each request at its time; with `tokens`, its token minted as it is sent."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    samples: dict[int, Sample] = {}

    async def one(request: ProofRequest, user: BenchUser) -> None:
        await asyncio.sleep(max(0.0, start + request.send_at - loop.time()))
        token = user.token if tokens is None else tokens.mint(request.index, user)
        if request.killed and doomed is not None:
            call = _call(doomed.service, anon_key, token, user, request)
            gauge: OpenStreams | None = doomed.first_tokens
        else:
            call, gauge = _call(service, anon_key, token, user, request), None
        samples[request.index] = await stream_once(session, call, SERVICE, timeout=120, gauge=gauge)
        if tokens is not None:
            tokens.end(request.index)

    await asyncio.gather(*(one(r, u) for r, u in zip(requests, users, strict=True)))
    return samples


async def _kill_and_sweep(
    stack: Stack, doomed: Doomed, requests: list[ProofRequest], users: list[BenchUser]
) -> dict[str, Any]:
    """Alongside `_fire`: once every killed turn is mid-stream, SIGKILL the doomed service,
    wait out its leases and sweep. The live service's own sweeper (every 30 s) may get there
    first; either way each turn is abandoned exactly once."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    bound = max(r.send_at for r in requests if r.killed) + FIRST_TOKENS_MAX_S
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(bound):
            await doomed.first_tokens.all_seen.wait()
    await asyncio.sleep(KILL_AFTER_S)
    doomed.streams_open_at_kill = doomed.first_tokens.now
    await asyncio.to_thread(doomed.service.proc.kill)
    doomed.killed_at_s = round(loop.time() - start, 1)
    killed_users = [users[r.index].id for r in requests if r.killed]
    swept = await _abandon(stack, killed_users)
    by_others = swept["turn_states"].get("abandoned", 0) - swept["swept_by_proof"]
    return doomed.as_json() | swept | {"swept_by_the_live_service": by_others}


def _call(
    service: Service, anon_key: str, token: str, user: BenchUser, request: ProofRequest
) -> Call:
    headers = {
        "authorization": f"Bearer {token}",
        "apikey": anon_key,
        "content-type": "application/json",
    }
    body = service_body(request.text(), user.next_conversation())
    return Call(service.endpoint, headers, body, request.leave_at)


def _rows(dsn: str, user_ids: list[str]) -> list[dict[str, Any]]:
    with psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as conn:
        return conn.execute(
            "select request_id, user_id::text as user_id, model, provider, tokens_in, tokens_out,"
            " cache_read_tokens, cache_write_tokens, cost_usd, status, estimated, output_unknown"
            " from public.usage_logs where user_id = any(%s::uuid[])",
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


def _live_leases(dsn: str, user_ids: list[str]) -> int:
    """Turns of these users still streaming on a lease that has not run out."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "select count(*) from private.turns where user_id = any(%s::uuid[])"
            " and state = 'streaming' and expires_at > now()",
            (user_ids,),
        ).fetchone()
    return int(row[0]) if row else 0


def _turn_states(dsn: str, user_ids: list[str]) -> dict[str, int]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "select state, count(*) from private.turns where user_id = any(%s::uuid[])"
            " group by state order by state",
            (user_ids,),
        ).fetchall()
    return {str(state): int(n) for state, n in rows}


async def _sweep(stack: Stack) -> int:
    """`rpc/chat_sweep` through the Data API with the service role key: expired turns become
    abandoned usage rows. Returns how many this call recorded (the live service sweeps too)."""
    key = stack.status["service_role_key"]
    headers = {"apikey": key, "authorization": f"Bearer {key}", "content-type": "application/json"}
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{stack.api_url}/rest/v1/rpc/chat_sweep", data=b"{}", headers=headers
        ) as response:
            body = await response.text()
            if response.status != 200:
                raise RuntimeError(f"rpc/chat_sweep answered {response.status}: {body}")
    return int(body)


async def _abandon(stack: Stack, user_ids: list[str]) -> dict[str, Any]:
    """Wait (bounded) until the killed turns' leases have run out, then sweep them."""
    began = time.monotonic()
    deadline = began + DOOMED_LEASE_S + LEASE_MARGIN_S
    live = await asyncio.to_thread(_live_leases, stack.superuser_dsn, user_ids)
    while live and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        live = await asyncio.to_thread(_live_leases, stack.superuser_dsn, user_ids)
    lease_wait_s = time.monotonic() - began
    swept = await _sweep(stack)
    return {
        "lease_wait_s": round(lease_wait_s, 1),
        "leases_still_live": live,
        "swept_by_proof": swept,
        "turn_states": await asyncio.to_thread(_turn_states, stack.superuser_dsn, user_ids),
    }


async def run_proof(
    procs: Procs,
    *,
    count: int,
    seconds: float,
    seed: int,
    workers: int,
    say: Callable[[str], None] = print,  # noqa: T202
    plan: Sequence[ProofRequest] | None = None,
    token_lifetime_s: int | None = None,
) -> dict[str, Any]:
    """The proof of `plan_requests(count, seconds, seed)`, or of `plan` when given (its
    indices 0..n-1, each request a turn of its own user). With `token_lifetime_s`, every token
    stops being valid that long after its request is sent (`proof_tokens`), the planned answers
    stream for at least twice that, and the live service runs on a short lease."""
    if plan is not None:
        requests = list(plan)
    else:
        min_stream_s = 2.0 * token_lifetime_s if token_lifetime_s else 0.0
        requests = plan_requests(count, seconds, seed, min_stream_s=min_stream_s)
    count = len(requests)
    stack = Stack(procs, procs.run_dir)
    try:
        say(f"starting the LLM stand-in and the local stack in {procs.run_dir}")
        stack.start()
        assert stack.keys is not None
        world = World(stack.superuser_dsn, stack.keys, stack.issuer)
        users = world.ensure_users(count, conversations_each=1)
        tokens = None
        live_env: dict[str, str] = {}
        if token_lifetime_s is not None:
            tokens = ExpiringTokens(world, token_lifetime_s)
            live_env["RESERVATION_TTL_SECONDS"] = str(TOKENS_LEASE_S)
        service = stack.start_service(workers, Guards(), env=live_env)
        killed = [r.index for r in requests if r.killed]
        doomed = None
        if killed:
            lease = {"RESERVATION_TTL_SECONDS": str(DOOMED_LEASE_S)}
            doomed_service = stack.start_service(1, Guards(), name="doomed", env=lease)
            doomed = Doomed(doomed_service, FirstTokens(len(killed)))
        say(
            f"streaming {count} conversations over {seconds:.0f}s through {workers} worker(s),"
            f" {len(killed)} of them through a doomed worker killed mid-stream"
        )
        since = time.monotonic()
        started = time.monotonic()
        abandoned: dict[str, Any] = {}
        async with aiohttp.ClientSession(connector=connector()) as session:
            anon = stack.status["anon_key"]
            firing = _fire(session, service, doomed, anon, requests, users, tokens)
            running = asyncio.Event()
            running.set()
            sweeping = None
            if tokens is not None:
                sweeping = asyncio.ensure_future(tokens.sweep_while(running, lambda: _sweep(stack)))
            try:
                if doomed is None:
                    samples = await firing
                else:
                    killing = _kill_and_sweep(stack, doomed, requests, users)
                    samples, abandoned = await asyncio.gather(firing, killing)
            finally:
                running.clear()
                if sweeping is not None:
                    await sweeping
        streamed_s = time.monotonic() - started
        user_ids = [u.id for u in users]
        settle_s = await _settle(stack.superuser_dsn, user_ids, stack.standin_url, since)
        swept_after = await _sweep(stack) if tokens is not None else 0
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

    owners = {user.id: index for index, user in enumerate(users)}
    verdict = reconcile(requests, samples, ledger, rows, price, owners)
    expiring: dict[str, Any] = {}
    if tokens is not None:
        if abandoned:  # the proof's own sweeps during the run took some of the killed turns
            by_live = abandoned["swept_by_the_live_service"] - tokens.swept_during_run
            abandoned["swept_by_the_live_service"] = max(by_live, 0)
        killed_users = {u.id for u, r in zip(users, requests, strict=True) if r.killed}
        live_abandoned = sum(
            1 for row in rows if is_abandoned(row) and row["user_id"] not in killed_users
        )
        expiring = tokens.as_json() | {
            "swept_after_run": swept_after,
            "abandoned_rows_of_live_turns": live_abandoned,
            "ok": live_abandoned == 0 and spooled == 0 and verdict.ok,
        }
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
        "killed_worker": abandoned,
        "verdict": verdict.as_json(),
        "expiring_tokens": expiring,
    }


def _count(kinds: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for kind in kinds:
        out[kind] = out.get(kind, 0) + 1
    return out


def _outbox_files(run_dir: Path) -> int:
    return sum(1 for d in run_dir.glob("outbox-*") for p in d.rglob("*") if p.is_file())
