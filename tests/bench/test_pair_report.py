"""The issue's table from a seed / chat-stream pair: the figures and the verdict of each goal."""

from __future__ import annotations

from typing import Any

import pytest

from bench.pair_report import (
    cpu_fake_line,
    cpu_full_line,
    ended,
    ended_line,
    loads,
    markdown,
    ttft_line,
)


def row(code: str, scenario: str, c: int, **values: Any) -> dict[str, Any]:
    return {"code": code, "scenario": scenario, "concurrency": c, "load_1m": 1.5} | values


def split(done: int, refused: int = 0, errors: int = 0, **extra: Any) -> dict[str, Any]:
    return {
        "done": done,
        "refused_503": refused,
        "refused_with_retry_after": extra.get("retry_after", refused),
        "error_events": errors,
        "error_codes": extra.get("codes", {}),
        "failed": extra.get("failed", 0),
        "failures": extra.get("failures", {}),
        "refused_before_money": extra.get("before_money", True if refused else True),
    }


@pytest.mark.parametrize(
    ("ours", "met"),
    [((3.0, 3.0), True), ((2.0, 9.0), False), ((4.0, 2.0), False), ((None, 2.0), None)],
)
def test_ttft_line_is_met_only_when_both_percentiles_are_at_most_the_seeds(
    ours: tuple[float | None, float], met: bool | None
) -> None:
    rows = [
        row("seed", "fast", 10, ttft_p50_added=3.0, ttft_p99_added=8.0),
        row("chat-stream", "fast", 10, ttft_p50_added=ours[0], ttft_p99_added=ours[1]),
    ]
    line = ttft_line(rows, 10)
    assert line.met is met
    assert line.seed == "+3.0 / +8.0 ms"


def test_cpu_fake_line_compares_with_twice_the_fakes_own_direct_cpu() -> None:
    def rows(ours: float) -> list[dict[str, Any]]:
        return [
            row("seed", "fast", 100, service_cpu_ms_per_1k_tokens=57.0),
            row(
                "chat-stream",
                "fast",
                100,
                service_cpu_ms_per_1k_tokens=ours,
                upstream_cpu_ms_per_1k_tokens_direct=22.0,
                upstream_cpu_ms_per_1k_tokens=30.0,  # the fake while relaying: not the base
            ),
        ]

    assert cpu_fake_line(rows(66.0)).ours == "66.0 ms (3.0x the fake's own 22)"
    assert cpu_fake_line(rows(66.0)).met is False
    assert cpu_fake_line(rows(44.0)).met is True
    assert cpu_fake_line(rows(44.1)).met is False


@pytest.mark.parametrize(("ours", "met"), [(25.0, True), (27.0, True), (27.1, False)])
def test_cpu_full_line_keeps_chat_stream_at_half_the_seed(ours: float, met: bool) -> None:
    rows = [
        row("seed", "full", 10, service_cpu_ms_per_1k_tokens=54.0),
        row("chat-stream", "full", 10, service_cpu_ms_per_1k_tokens=ours),
    ]
    assert cpu_full_line(rows).met is met


@pytest.mark.parametrize(
    ("ours", "met"),
    [
        (split(386, refused=14), True),
        (split(400), True),
        (split(399, errors=1, codes={"provider_timeout": 1}), False),
        (split(399, failed=1, failures={"incomplete": 1}), False),
        (split(386, refused=14, before_money=False), False),
        (split(386, refused=14, retry_after=13), False),  # one refusal without Retry-After
        (split(386, refused=14, before_money=None), True),  # not counted: not judged false
    ],
)
def test_ended_line_wants_no_error_event_and_every_refusal_before_money(
    ours: dict[str, Any], met: bool
) -> None:
    rows = [row("seed", "fast", 400, split=split(400)), row("chat-stream", "fast", 400, split=ours)]
    assert ended_line(rows).met is met


def test_ended_reads_as_the_issue_states_it() -> None:
    text = ended(split(386, refused=14, errors=2, codes={"provider_timeout": 2}))
    assert text == (
        "386 done, 14 refused with 503 (before money, Retry-After 14/14), 2 error events"
        " (provider_timeout 2)"
    )
    assert ended(None) == "-"
    codes = {"overloaded": 13, "(no code) without Retry-After": 1}
    text = ended(split(386, refused=14, retry_after=13) | {"refusal_codes": codes})
    assert "Retry-After 13/14; (no code) without Retry-After 1; overloaded 13)" in text


def test_markdown_marks_an_unmeasured_goal_as_not_judged() -> None:
    rows = [row("seed", "fast", 1, ttft_p50_added=3.0, ttft_p99_added=3.0)]
    table = markdown(rows)
    assert "| added TTFT p50 / p99, c=1 | +3.0 / +3.0 ms | - | <= seed | - |" in table
    assert table.count("\n") == 7  # header, rule, six goals


def test_loads_lists_each_relays_load_per_setting() -> None:
    rows = [row("seed", "fast", 1), row("chat-stream", "fast", 1, load_1m=2.25)]
    assert loads(rows) == "fast c=1: seed 1.5, chat-stream 2.2"
