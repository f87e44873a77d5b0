"""The store's RPCs over aiohttp: a dropped pooled connection is retried once, then translated.

A raw HTTP/1.1 server on loopback that hangs up without answering on the requests it is told
to drop: as a server that closed an idle keep-alive connection the pool still held.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from pydantic import SecretStr

from app.config.keys import ApiKey
from app.errors import StoreError
from app.store.attestation import Attestor, key_bytes
from app.store.chat_store import SupabaseChatStore
from app.store.data_api import DataApi

pytestmark = pytest.mark.anyio

KEY = ApiKey(
    "secret", SecretStr("sb_secret_N7UND0UgjKTVK-Uodkm0Hg_xSvEMPvz"), "SUPABASE_SECRET_KEY"
)


class DroppingServer:
    """Answers `chat_sweep` with how many requests it has seen; hangs up on those in `drop`."""

    def __init__(self, drop: set[int]) -> None:
        self.drop, self.seen = drop, 0
        self.url = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":", 1)[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    0,
                )
                await reader.readexactly(length)
                self.seen += 1
                if self.seen in self.drop:
                    return  # hang up without a word
                body = str(self.seen).encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    b"content-length: %d\r\n\r\n%s" % (len(body), body)
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _served(drop: set[int]) -> tuple[DroppingServer, asyncio.Server]:
    server = DroppingServer(drop)
    listening = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    server.url = f"http://127.0.0.1:{port}"
    return server, listening


def _store(url: str, session: aiohttp.ClientSession) -> SupabaseChatStore:
    api = DataApi(url, KEY, session)
    return SupabaseChatStore(api, Attestor(key_bytes("k" * 43)), service=api, timeout=5)


async def test_store_rpc_on_a_dropped_pooled_connection_is_sent_again_once(
    session: aiohttp.ClientSession,
) -> None:
    server, listening = await _served(drop={2})
    async with listening:
        store = _store(server.url, session)

        assert await store.sweep() == 1  # the connection is now pooled
        assert await store.sweep() == 3  # request 2 was dropped; its retry is request 3

    assert server.seen == 3


async def test_store_rpc_dropped_twice_is_a_store_error(session: aiohttp.ClientSession) -> None:
    server, listening = await _served(drop={1, 2})
    async with listening:
        store = _store(server.url, session)

        with pytest.raises(StoreError, match="chat_sweep: ServerDisconnectedError"):
            await store.sweep()

    assert server.seen == 2


async def test_store_rpc_to_nothing_listening_is_a_store_error(
    session: aiohttp.ClientSession,
) -> None:
    _, listening = await _served(drop=set())
    port = listening.sockets[0].getsockname()[1]
    listening.close()
    await listening.wait_closed()

    with pytest.raises(StoreError, match="chat_sweep: ClientConnectorError"):
        await _store(f"http://127.0.0.1:{port}", session).sweep()
