"""An idle upstream connection leaves the pool before a 5-second server would close it.

uvicorn (vLLM, LiteLLM), Node and Apache close an idle keep-alive connection after 5 s; a turn
sent on one the server has just closed fails before the upstream read it (the full-path hold
saw 29 such `provider_unavailable` turns with a 30 s pool). The pool keeps one LLM_KEEPALIVE_SECONDS
(4 by default), and no longer.
"""

from __future__ import annotations

import asyncio

import pytest

from app.llm.factory import build_providers
from app.llm.http import Transport, build_client
from tests.support.database import make_settings

pytestmark = pytest.mark.anyio


class CountingServer:
    """Answers every request on a kept-alive connection; counts the connections made."""

    def __init__(self) -> None:
        self.connections = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                await reader.readexactly(2)  # the test's body: b"{}"
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


async def connections_for_two_requests(keepalive: float, transport: Transport, gap: float) -> int:
    counter = CountingServer()
    server = await asyncio.start_server(counter.handle, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    client = build_client(
        url,
        {},
        connect_timeout=2,
        idle_timeout=2,
        pool_timeout=2,
        transport=transport,
        keepalive_seconds=keepalive,
    )
    try:
        async with client:
            for _ in range(2):
                assert (await client.post("/v1/messages", content=b"{}")).text == "ok"
                await asyncio.sleep(gap)
    finally:
        server.close()
        await server.wait_closed()
    return counter.connections


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
async def test_a_connection_idle_past_the_keepalive_is_not_reused(transport: Transport) -> None:
    assert await connections_for_two_requests(0.2, transport, gap=0.6) == 2
    assert await connections_for_two_requests(5.0, transport, gap=0.6) == 1


def test_the_pool_keeps_an_idle_connection_under_five_seconds_by_default() -> None:
    assert 0 < make_settings().llm_keepalive_seconds < 5


async def test_the_setting_reaches_the_provider_pool() -> None:
    settings = make_settings(anthropic_api_key="sk-ant-test", llm_keepalive_seconds=1.5)
    providers = build_providers(settings)
    primary, _ = providers
    try:
        transport = primary._client._transport  # type: ignore[attr-defined]
        assert transport.limits.keepalive_expiry == 1.5
    finally:
        await providers.aclose()
