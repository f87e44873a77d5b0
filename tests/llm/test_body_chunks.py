"""An event stream read straight from aiohttp is the stream httpx reads, byte for byte; an encoded
body still goes through httpx's decoders; a body cut short is httpx's error, as before."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
import pytest

from app.llm.aiohttp_transport import AIOHTTP_CONTENT, HonestAiohttpTransport, body_chunks
from app.llm.sse_read import read_events

pytestmark = pytest.mark.anyio

EVENTS = b"".join(
    b'event: content_block_delta\ndata: {"i": %d, "text": "t\xc3\xa9"}\n\n' % i for i in range(200)
)
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def streaming(body: bytes, *, encoding: str | None = None, cut: bool = False) -> Handler:
    """An HTTP/1.1 server that sends `body` chunked, in small pieces (or stops half-way)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
        head += b"transfer-encoding: chunked\r\n"
        if encoding:
            head += b"content-encoding: %s\r\n" % encoding.encode()
        writer.write(head + b"\r\n")
        pieces = [body[i : i + 37] for i in range(0, len(body), 37)]
        for n, piece in enumerate(pieces):
            if cut and n == len(pieces) // 2:
                writer.transport.abort()
                return
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
            await asyncio.sleep(0)
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        writer.close()

    return handle


@asynccontextmanager
async def served(handler: Handler) -> AsyncIterator[str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        await server.wait_closed()


async def read_all(url: str, transport: httpx.AsyncBaseTransport | None) -> tuple[bytes, bool]:
    """The body through `body_chunks`, and whether it came straight from aiohttp."""
    async with (
        httpx.AsyncClient(transport=transport, timeout=5) as client,
        client.stream("POST", f"{url}/v1/messages", content=b"{}") as response,
    ):
        direct = AIOHTTP_CONTENT in response.extensions
        return b"".join([chunk async for chunk in body_chunks(response)]), direct


async def test_an_unencoded_stream_is_read_from_aiohttp_and_is_the_same_bytes() -> None:
    async with served(streaming(EVENTS)) as url:
        via_aiohttp, direct = await read_all(url, HonestAiohttpTransport())
        via_httpx, httpx_direct = await read_all(url, None)

    assert direct and not httpx_direct
    assert via_aiohttp == via_httpx == EVENTS


async def test_a_gzip_stream_is_decoded_by_httpx_as_before() -> None:
    async with served(streaming(gzip.compress(EVENTS), encoding="gzip")) as url:
        body, direct = await read_all(url, HonestAiohttpTransport())

    assert not direct
    assert body == EVENTS


async def test_the_events_read_straight_from_aiohttp_are_the_events_httpx_gives() -> None:
    async def events(url: str, transport: httpx.AsyncBaseTransport | None) -> list[tuple[str, str]]:
        async with (
            httpx.AsyncClient(transport=transport, timeout=5) as client,
            client.stream("POST", f"{url}/v1/messages", content=b"{}") as response,
        ):
            return [pair async for pair in read_events(response)]

    async with served(streaming(EVENTS)) as url:
        direct, through_httpx = await events(url, HonestAiohttpTransport()), await events(url, None)

    assert len(direct) == 200
    assert direct == through_httpx
    assert direct[5] == ("content_block_delta", '{"i": 5, "text": "t\u00e9"}')


async def test_a_body_cut_short_is_an_httpx_transport_error() -> None:
    async with served(streaming(EVENTS, cut=True)) as url:
        with pytest.raises(httpx.TransportError):
            await read_all(url, HonestAiohttpTransport())
