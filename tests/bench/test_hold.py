"""The full-path hold's arithmetic: memory per open stream and the service log's evidence."""

from __future__ import annotations

import orjson

from bench.hold import HoldPlan, log_summary, memory


def line(level: str, msg: str, logger: str = "app.chat.relay") -> str:
    return orjson.dumps({"ts": "t", "level": level, "logger": logger, "msg": msg}).decode()


def test_log_summary_groups_warnings_and_errors_by_message_without_ids() -> None:
    log = [
        line("WARNING", "provider call failed for turn 3f2a8c1e-1111-4222-8333-444455556666"),
        line("WARNING", "provider call failed for turn 9b1c2d3e-aaaa-4bbb-8ccc-ddddeeeeffff"),
        line("ERROR", "finish failed after 3 tries", logger="app.chat.durability"),
        line("INFO", "request done"),
        "Started server process [123]",  # uvicorn's plain lines are not records
        "[1, 2]",
    ]
    assert log_summary(log) == {
        "WARNING app.chat.relay: provider call failed for turn #": 2,
        "ERROR app.chat.durability: finish failed after # tries": 1,
    }


def test_memory_divides_the_growth_by_the_streams_open_at_that_moment() -> None:
    rss = {"baseline": 90.0, "at_max_open": 130.0, "max_open": 800}
    run = {"service_rss_mb": rss | {"peak": 160.0, "open_at_peak": 8}}
    assert memory(run) == {
        "baseline_mb": 90.0,
        "at_most_open_mb": 130.0,
        "most_open": 800,
        "peak_mb": 160.0,
        "open_at_rss_peak": 8,
        "kb_per_open_stream": 51.2,  # not (160 - 90) MB over 8 streams
    }


def test_memory_says_none_when_no_stream_was_open() -> None:
    run = {"service_rss_mb": {"baseline": 90.0, "at_max_open": 91.0, "max_open": 0}}
    assert memory(run)["kb_per_open_stream"] is None


def test_the_default_plan_keeps_every_stream_open_together_for_a_while() -> None:
    plan = HoldPlan()
    assert plan.scenario.min_requests == plan.streams == 1000
    assert plan.scenario.stream_s == 60.0
    assert plan.all_open_s == 20.0
