"""`read_events` reads what httpx-sse read, however the body is cut into chunks."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from httpx_sse import EventSource
from hypothesis import given, settings
from hypothesis import strategies as st

from app.llm.sse_read import read_events

pytestmark = pytest.mark.anyio


def _response(chunks: list[bytes]) -> httpx.Response:
    async def body() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body())


async def _read(chunks: list[bytes]) -> list[tuple[str, str]]:
    return [pair async for pair in read_events(_response(chunks))]


def _cut(body: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(body) + 1) for c in cuts})
    edges = [0, *points, len(body)]
    return [body[a:b] for a, b in zip(edges, edges[1:], strict=False) if b > a]


async def test_crlf_split_between_chunks_is_one_line_end() -> None:
    events = await _read([b"data: a\r", b"\n\r", b"\ndata: b\r\r"])
    assert events == [("message", "a"), ("message", "b")]


async def test_names_multiline_data_and_comments() -> None:
    body = b": ping\nevent: delta\ndata: one\ndata:two\nid: 7\n\n:x\n\nevent: stop\n\n"
    assert await _read([body]) == [("delta", "one\ntwo"), ("stop", "")]


async def test_a_multibyte_character_cut_in_two_chunks_decodes_whole() -> None:
    raw = 'data: {"t":"é😀"}\n\n'.encode()
    assert await _read([raw[:12], raw[12:14], raw[14:]]) == [("message", '{"t":"é😀"}')]


async def test_an_event_with_only_an_id_is_not_dispatched() -> None:
    assert await _read([b"id: 1\n\ndata: a\n\n\n"]) == [("message", "a")]


async def test_a_leading_bom_is_dropped_and_an_unfinished_event_is_not_dispatched() -> None:
    assert await _read([b"\xef\xbb\xbfdata: a\n\ndata: cut"]) == [("message", "a")]


# `id` and `retry` left out: httpx-sse also dispatches an event that has only those (no adapter
# reads one); that case has its own test above.
_FIELD = st.sampled_from([b"data", b"event", b": c", b"data:", b"other", b""])
_VALUE = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00"), max_size=8
).map(str.encode)
_END = st.sampled_from([b"\n", b"\r\n", b"\r"])
_LINE = st.one_of(st.tuples(_FIELD, st.just(b": "), _VALUE, _END), st.tuples(_END))


@settings(max_examples=300, deadline=None)
@given(st.lists(_LINE, max_size=30), st.lists(st.integers(0, 400), max_size=8))
async def test_same_events_as_httpx_sse(lines: list[tuple[bytes, ...]], cuts: list[int]) -> None:
    body = b"".join(b"".join(parts) for parts in lines)
    expected = [(e.event, e.data) async for e in EventSource(_response([body])).aiter_sse()]
    assert await _read(_cut(body, cuts)) == expected
