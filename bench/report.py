"""Side-by-side comparisons of the runs, the headline numbers the targets are judged on, and the
table the benchmark prints. Every service figure is read against the direct run next to it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bench.stats import added, ratio

TTFT_P99_LIMIT_MS = 100.0


def compare(direct: dict[str, Any], service: dict[str, Any]) -> dict[str, Any]:
    """One row of the table: the service run against the direct run measured just before it."""
    d_ttft, s_ttft = direct["ttft_ms"], service["ttft_ms"]
    d_total, s_total = direct["total_ms"], service["total_ms"]
    return {
        "scenario": service["scenario"],
        "concurrency": service["concurrency"],
        "workers": service["workers"],
        "requests": service["requests"],
        "errors": service["errors"],
        "direct_errors": direct["errors"],
        "ttft_p50_direct": d_ttft["p50"],
        "ttft_p50_service": s_ttft["p50"],
        "ttft_p50_added": _r(added(s_ttft["p50"], d_ttft["p50"])),
        "ttft_p99_direct": d_ttft["p99"],
        "ttft_p99_service": s_ttft["p99"],
        "ttft_p99_added": _r(added(s_ttft["p99"], d_ttft["p99"])),
        "total_p50_ratio": _r(ratio(s_total["p50"], d_total["p50"]), 3),
        "total_p99_ratio": _r(ratio(s_total["p99"], d_total["p99"]), 3),
        "throughput_ratio": _r(ratio(service["tokens_per_s"], direct["tokens_per_s"]), 3),
        "service_cpu_ms_per_1k_tokens": service.get("service_cpu_ms_per_1k_tokens"),
        "client_cpu_share": max(direct["client_cpu_share"] or 0, service["client_cpu_share"] or 0),
        "load_1m": round(service["load_avg"]["before"][0], 2),
    }


def pair_up(runs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each service run with the direct run of the same scenario and concurrency before it."""
    rows, last_direct = [], {}
    for run in runs:
        key = (run["scenario"], run["concurrency"])
        if run["path"] == "direct":
            last_direct[key] = run
        elif key in last_direct:
            rows.append(compare(last_direct[key], run))
    return rows


def highest_held(rows: list[dict[str, Any]], scenario: str, workers: int) -> int | None:
    """The highest concurrency with zero errors and p99 added TTFT under 100 ms."""
    held = [
        r["concurrency"]
        for r in rows
        if r["scenario"] == scenario
        and r["workers"] == workers
        and r["errors"] == 0
        and r["ttft_p99_added"] is not None
        and r["ttft_p99_added"] < TTFT_P99_LIMIT_MS
    ]
    return max(held) if held else None


def _find(rows: list[dict[str, Any]], scenario: str, c: int, w: int = 1) -> dict[str, Any]:
    for r in rows:
        if (r["scenario"], r["concurrency"], r["workers"]) == (scenario, c, w):
            return r
    return {}


def headlines(rows: list[dict[str, Any]], runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The numbers the issue's targets are stated in (None where the run did not measure them)."""
    hold = next((r for r in runs if r["scenario"] == "hold" and r["path"] == "service"), {})
    fast1, fast50, fast100 = (_find(rows, "fast", c) for c in (1, 50, 100))
    out: dict[str, Any] = {
        "ttft_added_p50_ms_c1": fast1.get("ttft_p50_added"),
        "ttft_added_p50_ms_c50": fast50.get("ttft_p50_added"),
        "ttft_added_p99_ms_c100": fast100.get("ttft_p99_added"),
        "total_ratio_p50_c100_w1": fast100.get("total_p50_ratio"),
        "total_ratio_p99_c100_w1": fast100.get("total_p99_ratio"),
        "cpu_ms_per_1k_tokens_fast_c100": fast100.get("service_cpu_ms_per_1k_tokens"),
        "cpu_ms_per_1k_tokens_relay_c100": _find(rows, "relay", 100).get(
            "service_cpu_ms_per_1k_tokens"
        ),
        "hold_streams": hold.get("concurrency"),
        "hold_errors": hold.get("errors"),
        "hold_peak_open_streams": hold.get("peak_open_streams"),
        "kb_per_open_stream": hold.get("service_kb_per_open_stream"),
        "peak_rss_mb": max(
            (r["service_rss_mb"]["peak"] for r in runs if "service_rss_mb" in r), default=None
        ),
    }
    for scenario in sorted({r["scenario"] for r in rows}):
        for workers in sorted({r["workers"] for r in rows if r["scenario"] == scenario}):
            out[f"highest_held_{scenario}_w{workers}"] = highest_held(rows, scenario, workers)
    return out


HEADER = (
    f"{'scenario':<10}{'c':>5}{'w':>3}{'req':>6}{'err':>5} | "
    f"{'TTFT p50 dir/svc (+add) ms':>28} | {'TTFT p99 dir/svc (+add) ms':>30} | "
    f"{'total p50':>9}{'p99':>7}{'tput':>6} | {'cpu/1k':>7}{'client':>7}{'load':>6}"
)


def table(rows: list[dict[str, Any]]) -> str:
    """The side-by-side table (ratios are service / direct; cpu is ms per 1,000 tokens)."""
    lines = [HEADER, "-" * len(HEADER)]
    for r in rows:
        lines.append(
            f"{r['scenario']:<10}{r['concurrency']:>5}{r['workers']:>3}{r['requests']:>6}"
            f"{r['errors']:>5} | "
            f"{_f(r['ttft_p50_direct']):>7}/{_f(r['ttft_p50_service']):<7} "
            f"({_signed(r['ttft_p50_added'])}) | "
            f"{_f(r['ttft_p99_direct']):>8}/{_f(r['ttft_p99_service']):<8} "
            f"({_signed(r['ttft_p99_added'])}) | "
            f"{_x(r['total_p50_ratio']):>9}{_x(r['total_p99_ratio']):>7}"
            f"{_x(r['throughput_ratio']):>6} | "
            f"{_f(r['service_cpu_ms_per_1k_tokens']):>7}"
            f"{_pct(r['client_cpu_share']):>7}{r['load_1m']:>6.1f}"
        )
    return "\n".join(lines)


def hold_line(run: dict[str, Any]) -> str:
    rss = run.get("service_rss_mb", {})
    return (
        f"hold: {run['concurrency']} streams ({run['path']}), {run['errors']} errors, "
        f"peak open {run['peak_open_streams']}, RSS {rss.get('baseline')} → {rss.get('peak')} MB, "
        f"{run.get('service_kb_per_open_stream')} KB per open stream"
    )


def _r(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _signed(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1f}"


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"
