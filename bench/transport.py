# ruff: noqa: T201 - a benchmark prints its results
"""Benchmark (not a test): the LLM stand-in's CPU cost, and the adapters' relay throughput over
httpx's own transport versus aiohttp's (httpx-aiohttp). Decides `LLM_HTTP_TRANSPORT`'s default.

    .venv/bin/python -m bench.transport --streams 100 --tokens 200 --rounds 3

The stand-in runs in its own process (as the "direct" upstream would); the adapters run here.
CPU is read from /proc for the stand-in and `time.process_time()` for this process.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

import aiohttp

from app.config import Settings
from app.core.domain import ChatMessage, CompletionRequest, TextDelta
from app.llm.factory import build_providers
from app.local.postgres import free_port

TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    """utime + stime of `pid` in seconds (Linux)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def start_standin(port: int, tokens: int, delay_ms: float) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app.local.llm.api",
            "--port",
            str(port),
            "--tokens",
            str(tokens),
            "--delay-ms",
            str(delay_ms),
        ],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return process
        time.sleep(0.05)
    process.kill()
    raise RuntimeError("stand-in did not start")


async def raw_streams(url: str, streams: int) -> int:
    """Drain `streams` concurrent Anthropic streams with a bare aiohttp client; bytes read."""
    body = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 4096,
        "stream": True,
        "messages": [{"role": "user", "content": "bench"}],
    }
    headers = {"x-api-key": "bench", "anthropic-version": "2023-06-01"}
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> int:
            async with session.post(f"{url}/v1/messages", json=body, headers=headers) as response:
                return len(await response.read())

        return sum(await asyncio.gather(*(one() for _ in range(streams))))


def _settings(**overrides: Any) -> Settings:
    """Settings for the benchmark: never read the developer's .env."""
    return Settings(_env_file=None, **overrides)  # type: ignore[call-arg]


async def relay(url: str, api: str, transport: str, streams: int) -> tuple[int, float, float]:
    """(deltas, wall seconds, client CPU seconds) for `streams` concurrent adapter streams."""
    providers = build_providers(
        _settings(
            llm_provider=api,
            anthropic_base_url=url,
            openai_base_url=f"{url}/v1",
            anthropic_api_key="bench",
            openai_api_key="bench",
            llm_http_transport=transport,
        )
    )
    request = CompletionRequest(
        model="claude-sonnet-4-6" if api == "anthropic" else "gpt-4o-mini",
        system="You are a coach.",
        messages=(ChatMessage("user", "bench"),),
        max_tokens=4096,
        temperature=0.7,
    )

    async def one() -> int:
        async with providers.primary.stream(request) as events:
            return sum([isinstance(e, TextDelta) async for e in events])

    await asyncio.gather(*(one() for _ in range(5)))  # warm the pool
    cpu0, t0 = time.process_time(), time.perf_counter()
    deltas = sum(await asyncio.gather(*(one() for _ in range(streams))))
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    await providers.aclose()
    return deltas, wall, cpu


async def main_async(args: argparse.Namespace) -> None:
    port = free_port()
    standin = start_standin(port, args.tokens, args.delay_ms)
    url = f"http://127.0.0.1:{port}"
    try:
        await raw_streams(url, 10)  # warm-up
        samples = []
        for _ in range(args.rounds):
            cpu0, t0 = process_cpu(standin.pid), time.perf_counter()
            await raw_streams(url, args.standin_streams)
            wall, cpu = time.perf_counter() - t0, process_cpu(standin.pid) - cpu0
            samples.append(cpu * 1000 / (args.standin_streams * args.tokens) * 1000)
            print(
                f"stand-in: {args.standin_streams} streams x {args.tokens} tokens in {wall:.2f}s,"
                f" stand-in CPU {cpu:.2f}s"
            )
        print(f"stand-in CPU per 1000 streamed tokens: median {statistics.median(samples):.1f} ms")

        for api in args.apis:
            results: dict[str, list[tuple[float, float, float]]] = {"httpx": [], "aiohttp": []}
            for round_ in range(args.rounds):
                order = ["httpx", "aiohttp"] if round_ % 2 == 0 else ["aiohttp", "httpx"]
                for transport in order:
                    up0 = process_cpu(standin.pid)
                    deltas, wall, cpu = await relay(url, api, transport, args.streams)
                    upstream_cpu = process_cpu(standin.pid) - up0
                    assert deltas == args.streams * args.tokens, deltas
                    results[transport].append((deltas / wall, cpu * 1e6 / deltas, upstream_cpu))
            for transport, rows in results.items():
                rate = statistics.median(r[0] for r in rows)
                cost = statistics.median(r[1] for r in rows)
                up = statistics.median(r[2] for r in rows)
                print(
                    f"relay {api:<9} {transport:<7} {args.streams} streams: {rate:8.0f} deltas/s,"
                    f" adapter CPU {cost:6.1f} ms/1000 deltas, stand-in CPU {up:.2f}s"
                    f" (rates {[round(r[0]) for r in rows]})"
                )
    finally:
        standin.terminate()
        standin.wait(10)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.transport", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--streams", type=int, default=100, help="concurrent adapter streams")
    parser.add_argument("--standin-streams", type=int, default=50)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--delay-ms", type=float, default=0.0, help="stand-in gap between tokens")
    parser.add_argument("--apis", nargs="+", default=["anthropic", "openai"])
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="uvloop")
    args = parser.parse_args(argv)
    if args.loop == "uvloop":
        import uvloop  # noqa: PLC0415

        uvloop.run(main_async(args))
    else:
        asyncio.run(main_async(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
