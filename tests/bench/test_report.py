"""Pairing runs side by side and judging them against the targets."""

from __future__ import annotations

from typing import Any

from bench.report import compare, headlines, highest_held, pair_up, table


def run(
    path: str,
    c: int,
    *,
    scenario: str = "fast",
    ttft: tuple[float, float] = (1.0, 5.0),
    total: tuple[float, float] = (1000.0, 1010.0),
    errors: int = 0,
    workers: int | None = None,
) -> dict[str, Any]:
    return {
        "scenario": scenario,
        "path": path,
        "workers": workers if path == "service" else None,
        "concurrency": c,
        "requests": 10,
        "errors": errors,
        "ttft_ms": {"p50": ttft[0], "p99": ttft[1]},
        "total_ms": {"p50": total[0], "p99": total[1]},
        "tokens_per_s": 2000.0,
        "client_cpu_share": 0.1,
        "service_cpu_ms_per_1k_tokens": 40.0 if path == "service" else None,
        "load_avg": {"before": (1.5, 1.0, 1.0), "after": (1.5, 1.0, 1.0)},
    }


def test_compare_reports_added_ttft_and_total_ratios() -> None:
    row = compare(
        run("direct", 10, ttft=(1.0, 5.0), total=(1000.0, 1000.0)),
        run("service", 10, ttft=(4.0, 45.0), total=(1050.0, 1200.0), workers=1),
    )

    assert (row["ttft_p50_added"], row["ttft_p99_added"]) == (3.0, 40.0)
    assert (row["total_p50_ratio"], row["total_p99_ratio"]) == (1.05, 1.2)
    assert row["throughput_ratio"] == 1.0


def test_pair_up_pairs_each_service_run_with_the_direct_run_before_it() -> None:
    runs = [
        run("direct", 10, ttft=(1.0, 2.0)),
        run("service", 10, ttft=(3.0, 4.0), workers=1),
        run("direct", 10, ttft=(2.0, 2.0)),
        run("service", 10, ttft=(9.0, 9.0), workers=2),
        run("service", 99, workers=1),  # no direct run to compare with: left out
    ]

    rows = pair_up(runs)

    assert [(r["workers"], r["ttft_p50_added"]) for r in rows] == [(1, 2.0), (2, 7.0)]


def test_highest_held_needs_zero_errors_and_p99_added_under_100_ms() -> None:
    rows = pair_up(
        [
            run("direct", 10),
            run("service", 10, ttft=(5.0, 50.0), workers=1),
            run("direct", 100),
            run("service", 100, ttft=(5.0, 99.0), workers=1),
            run("direct", 500),
            run("service", 500, ttft=(5.0, 60.0), errors=1, workers=1),
            run("direct", 1000),
            run("service", 1000, ttft=(5.0, 200.0), workers=1),
        ]
    )

    assert highest_held(rows, "fast", 1) == 100
    assert highest_held(rows, "fast", 2) is None


def test_headlines_and_table_name_the_target_numbers() -> None:
    runs = [run("direct", 1), run("service", 1, ttft=(4.0, 8.0), workers=1)]
    rows = pair_up(runs)

    lines = headlines(rows, runs)
    text = table(rows)

    assert lines["ttft_added_p50_ms_c1"] == 3.0
    assert lines["ttft_added_p50_ms_c50"] is None
    assert "(+3.0)" in text
