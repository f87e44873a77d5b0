"""How a run's turns are split: done, refused before money, error events, and who caused each."""

from __future__ import annotations

import pytest

from bench.client import Sample
from bench.outcomes import cause_of, count_delta, error_code, kind_of, split

OURS_ERROR = b'id: t:3\ndata: {"type":"error","message":"slow","code":"provider_timeout"}\n\n'
OWN_ERROR = b'data: {"type":"error","message":"busy","code":"store_unavailable"}\n\n'
SEED_ERROR = b'data: {"type":"error","message":"Coach is taking a moment."}\n\n'


OVERLOADED = b'{"error":"overloaded","userMessage":"Lots of people","code":"overloaded"}'


def sample(outcome: str, tail: bytes = b"", retry_after: float | None = None) -> Sample:
    return Sample(started=0.0, outcome=outcome, tail=tail, retry_after=retry_after)


@pytest.mark.parametrize(
    ("tail", "code"),
    [
        (OURS_ERROR, "provider_timeout"),
        (OWN_ERROR, "store_unavailable"),
        (SEED_ERROR, None),
        (b'data: {"type":"token","content":"code"}\n\n', None),
        (OWN_ERROR + OURS_ERROR, "provider_timeout"),  # the last one counts
    ],
)
def test_error_code_reads_the_last_error_events_code(tail: bytes, code: str | None) -> None:
    assert error_code(tail) == code


@pytest.mark.parametrize(
    ("outcome", "kind"),
    [
        ("done", "done"),
        ("http_503", "refused"),
        ("error_event", "error_event"),
        ("http_429", "failed"),
        ("http_500", "failed"),
        ("incomplete", "failed"),
        ("timeout", "failed"),
        ("ClientOSError", "failed"),
    ],
)
def test_kind_of_counts_only_a_503_as_a_refusal(outcome: str, kind: str) -> None:
    assert kind_of(sample(outcome)) == kind


@pytest.mark.parametrize(
    ("turn", "cause"),
    [
        (sample("done"), None),
        (sample("http_503", retry_after=1.0), None),
        (sample("error_event", OURS_ERROR), "upstream"),
        (sample("error_event", OWN_ERROR), "relay"),
        (sample("error_event", SEED_ERROR), "relay"),
        (sample("incomplete"), "relay"),
        (sample("timeout"), "relay"),
    ],
)
def test_cause_of_blames_the_upstream_only_for_a_provider_code(
    turn: Sample, cause: str | None
) -> None:
    assert cause_of(turn) == cause


def test_split_counts_each_kind_and_codes() -> None:
    turns = [
        sample("done"),
        sample("done"),
        sample("http_503", OVERLOADED, retry_after=1.0),
        sample("http_503", b"Service Unavailable"),
        sample("error_event", OURS_ERROR),
        sample("error_event", SEED_ERROR),
        sample("incomplete"),
    ]
    out = split(turns, upstream_calls=5, writes={"rpc:chat_finish": 4, "rpc:chat_begin": 9})
    assert (out.done, out.refused, out.error_events, out.failed) == (2, 2, 2, 1)
    assert out.refused_with_retry_after == 1
    assert out.error_codes == {"provider_timeout": 1, "(no code)": 1}
    assert out.refusal_codes == {"overloaded": 1, "(no code) without Retry-After": 1}
    assert out.failures == {"incomplete": 1}
    assert (out.upstream_caused, out.relay_caused) == (1, 2)
    assert (out.turns, out.accepted, out.usage_writes) == (7, 5, 4)
    assert out.refused_before_money is True


@pytest.mark.parametrize(
    ("upstream_calls", "writes", "before_money"),
    [
        (3, {"rpc:chat_finish": 3}, True),
        (4, {"rpc:chat_finish": 3}, False),  # a refused turn still called the upstream
        (3, {"rpc:chat_finish": 2, "insert:usage_logs": 2}, False),  # or wrote usage
        (None, {"rpc:chat_finish": 3}, None),
        (3, None, None),
    ],
)
def test_refusals_count_as_before_money_only_when_the_counts_show_it(
    upstream_calls: int | None, writes: dict[str, int] | None, before_money: bool | None
) -> None:
    turns = [sample("done")] * 3 + [sample("http_503", retry_after=1.0)] * 2
    out = split(turns, upstream_calls=upstream_calls, writes=writes)
    assert out.refused_before_money is before_money


def test_count_delta_keeps_what_the_run_changed() -> None:
    before = {"rpc:chat_begin": 10, "rpc:chat_ping": 2}
    after = {"rpc:chat_begin": 25, "rpc:chat_ping": 2, "insert:usage_logs": 3}
    assert count_delta(before, after) == {"insert:usage_logs": 3, "rpc:chat_begin": 15}
