"""The aiohttp transport names a server that hangs up without answering as httpx does."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from app.llm.aiohttp_transport import HonestAiohttpTransport


async def _hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.close()


@pytest.mark.anyio
async def test_transport_server_closing_without_answer_is_remote_protocol_error() -> None:
    server = await asyncio.start_server(_hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with httpx.AsyncClient(transport=HonestAiohttpTransport(), timeout=5) as client:
            with pytest.raises(httpx.RemoteProtocolError):
                await client.post(f"http://127.0.0.1:{port}/rpc", content=b"{}")
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.anyio
async def test_transport_refused_connection_is_connect_error_not_timeout() -> None:
    server = await asyncio.start_server(_hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    async with httpx.AsyncClient(transport=HonestAiohttpTransport(), timeout=5) as client:
        with pytest.raises(httpx.ConnectError):
            await client.post(f"http://127.0.0.1:{port}/rpc", content=b"{}")


async def _echo_length(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(
        next(
            v
            for k, _, v in (line.partition(b": ") for line in head.split(b"\r\n"))
            if k.lower() == b"content-length"
        )
    )
    body = await reader.readexactly(length)
    answer = str(len(body)).encode()
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(answer), answer))
    await writer.drain()
    writer.close()


@pytest.mark.anyio
async def test_transport_sends_a_body_over_a_megabyte_whole_and_without_warning() -> None:
    server = await asyncio.start_server(_echo_length, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    body = b"x" * (3 * 2**20 + 7)
    try:
        async with httpx.AsyncClient(transport=HonestAiohttpTransport(), timeout=10) as client:
            response = await client.post(f"http://127.0.0.1:{port}/rpc", content=body)
    finally:
        server.close()
        await server.wait_closed()

    assert response.text == str(len(body))
