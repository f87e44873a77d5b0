"""The SSE encoder against any text a model can produce: framing holds, the text comes back whole.

Parsed back with httpx-sse's own parser (what the tests' client and many apps use), never by hand.
"""

from __future__ import annotations

import json

import httpx
from httpx_sse import EventSource
from hypothesis import given
from hypothesis import strategies as st

from app.api.sse import PING, encode, encode_event, encode_token
from app.core.domain import Done, TextDelta, Usage

# Any Unicode text but lone surrogates (which no JSON decoder hands a provider adapter), with the
# characters that break line-based framing drawn far more often than chance would.
FRAMING_HAZARDS = ["\n", "\r", "\r\n", "\n\n", "data:", ": ", "\u2028", "\u2029", "\x85", '"', "\\"]
texts = st.lists(
    st.one_of(st.sampled_from(FRAMING_HAZARDS), st.text(max_size=20)), max_size=12
).map("".join)


def compact(value: object) -> bytes:
    """The wire's JSON, by an independent encoder: no spaces after separators, UTF-8 as is."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def parse(stream: bytes) -> list[str]:
    """The `data` of each event, as httpx-sse reads it from a response body."""
    response = httpx.Response(200, headers={"content-type": "text/event-stream"}, content=stream)
    return [event.data for event in EventSource(response).iter_sse()]


@given(texts)
def test_encode_token_any_text_is_one_data_line_that_parses_back_to_the_same_text(
    text: str,
) -> None:
    encoded = encode_token(text)

    assert encoded.startswith(b"data: ") and encoded.endswith(b"\n\n")
    line = encoded[len(b"data: ") : -2]
    assert b"\n" not in line and b"\r" not in line
    assert line == compact({"type": "token", "content": text})
    assert parse(encoded) == [line.decode()]
    assert json.loads(parse(encoded)[0]) == {"type": "token", "content": text}


@given(st.lists(texts, min_size=1, max_size=8))
def test_encode_token_sequences_with_pings_keep_every_event_boundary(tokens: list[str]) -> None:
    stream = PING.join(encode_token(t) for t in tokens) + encode({"type": "done"})

    events = [json.loads(data) for data in parse(stream)]

    assert [e.get("content") for e in events[:-1]] == tokens
    assert events[-1] == {"type": "done"}


@given(st.text(max_size=40), st.integers(-(2**63), 2**63 - 1), st.none() | st.text(max_size=10))
def test_encode_event_is_compact_json_on_a_single_line(
    message: str, number: int, code: str | None
) -> None:
    event = {"type": "error", "message": message, "n": number, "code": code}
    encoded = encode(event)

    assert encoded == b"data: " + compact(event) + b"\n\n"
    assert encoded.count(b"\n") == 2
    assert json.loads(parse(encoded)[0]) == event


def test_ping_is_an_sse_comment_that_no_parser_reports_as_an_event() -> None:
    # One comment line, no blank line: once an event carried an `id`, httpx-sse dispatches an
    # empty event on every blank line (it keeps the last id, as the spec says, and does not
    # check for empty data), so a ping ending in a blank line would reach the app as an event.
    assert PING.startswith(b":") and PING.endswith(b"\n") and not PING.endswith(b"\n\n")
    assert parse(PING * 3) == []


@given(st.lists(texts, min_size=1, max_size=8))
def test_pings_between_events_with_ids_are_never_reported_as_events(tokens: list[str]) -> None:
    turn = "7d3f1c2a-0000-4000-8000-000000000000"
    stream = PING + PING.join(
        encode_event(TextDelta(t), turn, seq) for seq, t in enumerate(tokens, start=1)
    )
    stream += PING * 2 + encode_event(Done("m", Usage()), turn, len(tokens) + 1) + PING

    response = httpx.Response(200, headers={"content-type": "text/event-stream"}, content=stream)
    events = list(EventSource(response).iter_sse())

    assert [json.loads(e.data).get("content") for e in events[:-1]] == tokens
    assert [e.id for e in events] == [f"{turn}:{n}" for n in range(1, len(tokens) + 2)]
    assert json.loads(events[-1].data)["turnId"] == turn
