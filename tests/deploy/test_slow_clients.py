"""Slow and abusive clients against `chat-stream serve` (uvicorn with app.api.protocol's guard)."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.local.server import ServerThread
from app.local.stack import LocalStack
from tests.deploy.serving import Served, serve

pytestmark = pytest.mark.slow

HEADER_TIMEOUT = 2.0
TRICKLE_EVERY = 0.5
BOUND = 25.0  # far above the header timeout; a trickler still open then was never cut off


@pytest.fixture(scope="module")
def guarded(
    local_stack: LocalStack, stack_server: ServerThread, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("guarded")
    with serve(local_stack, tmp, HEADER_TIMEOUT_SECONDS=str(HEADER_TIMEOUT)) as served:
        yield served


def _host_port(served: Served) -> tuple[str, int]:
    host, port = served.url.removeprefix("http://").split(":")
    return host, int(port)


async def _trickle(host: str, port: int, n: int) -> tuple[bytes, float]:
    """Send a request line, then one header line every TRICKLE_EVERY s until the server closes."""
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection(host, port)
    started = loop.time()
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: slow.example\r\n")
    await writer.drain()
    received = b""
    try:
        while loop.time() - started < BOUND:
            try:
                chunk = await asyncio.wait_for(reader.read(4096), TRICKLE_EVERY)
            except TimeoutError:
                writer.write(b"X-Trickle-%d: still here\r\n" % n)
                await writer.drain()
                continue
            if not chunk:
                break
            received += chunk
    except ConnectionError:
        pass
    finally:
        writer.close()
    return received, loop.time() - started


def test_slowloris_200_trickling_connections_are_closed_while_a_normal_request_succeeds(
    guarded: Served,
) -> None:
    host, port = _host_port(guarded)

    async def scenario() -> tuple[list[tuple[bytes, float]], httpx.Response]:
        tricklers = [asyncio.create_task(_trickle(host, port, n)) for n in range(200)]
        await asyncio.sleep(TRICKLE_EVERY)  # every trickler is connected and mid-headers
        async with httpx.AsyncClient() as client:
            normal = await client.get(f"{guarded.url}/healthz", timeout=10)
        return await asyncio.gather(*tricklers), normal

    outcomes, normal = asyncio.run(scenario())

    assert normal.status_code == 200 and normal.json() == {"status": "ok"}
    assert len(outcomes) == 200
    for received, lasted in outcomes:
        assert lasted < BOUND, "a trickling connection was never closed"
        head, _, body = received.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408 "), received[:200]
        assert json.loads(body)["code"] == "request_timeout"
    slowest = max(lasted for _, lasted in outcomes)
    assert slowest >= HEADER_TIMEOUT * 0.9  # cut off by the deadline, not refused at once


def _raw(served: Served, payload: bytes) -> tuple[bytes, dict[str, object]]:
    with socket.create_connection(_host_port(served), timeout=10) as sock:
        sock.sendall(payload)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    return head, json.loads(body)


def test_framing_error_is_answered_with_our_json_error_shape(guarded: Served) -> None:
    head, body = _raw(guarded, b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ")
    assert b"content-type: application/json" in head.lower()
    assert body["code"] == "invalid_http"
    assert set(body) == {"error", "userMessage", "code"}


def test_headers_over_64_kib_are_refused_with_431_in_our_json_shape(guarded: Served) -> None:
    huge = b"X-Padding: " + b"a" * 70_000 + b"\r\n"
    head, body = _raw(guarded, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + huge + b"\r\n")
    assert head.startswith(b"HTTP/1.1 431 ")
    assert body["code"] == "headers_too_large"


def test_connections_over_the_per_worker_cap_get_503_json_with_retry_after(
    local_stack: LocalStack, stack_server: ServerThread, tmp_path: Path
) -> None:
    with serve(
        local_stack, tmp_path, MAX_CONNECTIONS_PER_WORKER="3", HEADER_TIMEOUT_SECONDS="60"
    ) as served:
        idle = [socket.create_connection(_host_port(served), timeout=10) for _ in range(3)]
        try:
            with httpx.Client() as client:
                response = client.get(f"{served.url}/healthz", timeout=10)
                # Poll until the server has registered the idle sockets (bounded, not a sleep).
                for _ in range(100):
                    if response.status_code == 503:
                        break
                    response = client.get(f"{served.url}/healthz", timeout=10)
        finally:
            for sock in idle:
                sock.close()
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json()["code"] == "over_capacity"
