"""W3C trace context parsing: exactly what the recommendation allows, nothing raises."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.ops.trace_context import from_headers, parse_traceparent, parse_tracestate

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
VALID = f"00-{TRACE}-{PARENT}-01"


@pytest.mark.parametrize(
    ("header", "accepted"),
    [
        (VALID, True),
        (f"00-{TRACE}-{PARENT}-00", True),  # not sampled: still a context to pass on
        (f"01-{TRACE}-{PARENT}-01-future-field", True),  # a later version may add fields
        (f"01-{TRACE}-{PARENT}-01", True),
        (f"00-{TRACE}-{PARENT}-01-extra", False),  # version 00 has nothing after the flags
        (f"ff-{TRACE}-{PARENT}-01", False),  # version ff is invalid
        (f"00-{'0' * 32}-{PARENT}-01", False),  # all-zero trace id
        (f"00-{TRACE}-{'0' * 16}-01", False),  # all-zero parent id
        (f"00-{TRACE.upper()}-{PARENT}-01", False),  # uppercase hex
        (f"00-{TRACE[:-1]}-{PARENT}-01", False),
        (f"00-{TRACE}-{PARENT}-1", False),
        (f" {VALID}", False),
        (f"{VALID}\n", False),
        (f"00_{TRACE}_{PARENT}_01", False),
        (f"{VALID},{VALID}", False),  # two headers joined
        ("", False),
        ("00-" + "a" * 600, False),
    ],
)
def test_parse_traceparent_accepts_only_the_w3c_format(header: str, accepted: bool) -> None:
    context = parse_traceparent(header)

    assert (context is not None) is accepted
    if context is not None:
        assert (context.trace_id, context.parent_id) == (TRACE, PARENT)
        assert context.traceparent.startswith(f"00-{TRACE}-{PARENT}-")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("congo=t61rcWkgMzE", "congo=t61rcWkgMzE"),
        ("rojo=00f067aa0ba902b7, congo=t61rcWkgMzE", "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"),
        ("tenant@vendor=v1,,a=b", "tenant@vendor=v1,a=b"),  # empty members dropped
        ("a=1,a=2", None),  # a key twice
        ("Upper=1", None),
        ("a=", None),
        ("a=x,b", None),
        ("a=x=y", None),
        ("a=trailing ", "a=trailing"),  # whitespace around a member is allowed
        ("a=x\ty", None),  # a tab inside a value is not
        (",".join(f"k{i}=v" for i in range(33)), None),  # more than 32 members
        ("", None),
    ],
)
def test_parse_tracestate_keeps_a_valid_list_and_drops_a_malformed_one(
    header: str, expected: str | None
) -> None:
    assert parse_tracestate(header) == expected


def test_from_headers_ignores_tracestate_without_a_valid_traceparent() -> None:
    assert from_headers({"traceparent": "garbage", "tracestate": "a=b"}) is None
    context = from_headers({"traceparent": VALID, "tracestate": "a=b,BAD"})
    assert context is not None and context.tracestate is None  # bad list: dropped alone
    assert context.sampled


@given(st.text(max_size=80), st.text(max_size=80))
def test_trace_headers_hostile_values_never_raise(traceparent: str, tracestate: str) -> None:
    context = from_headers({"traceparent": traceparent, "tracestate": tracestate})

    if context is not None:  # what is accepted re-serialises to itself (version 00)
        assert parse_traceparent(context.traceparent) == context.__class__(
            context.trace_id, context.parent_id, context.flags
        )
