"""The issue's table from a side-by-side run of the seed and chat-stream (pure functions).

Every figure comes from the rows `bench.relay.one_setting` returns, one per relay and setting:
added TTFT is that relay's run minus the direct run to the stand-in just before it (same setting,
same run); CPU per 1k tokens is the relay process's; "the fake's own" is the stand-in's CPU per
1k tokens in that direct run, the proxy for the physical limit. Each goal is judged here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

SEED, OURS = "seed", "chat-stream"
FAKE_LIMIT_X = 2.0  # chat-stream's CPU per 1k at c=100 at most this many times the fake's own
SEED_SHARE_FULL = 0.5  # chat-stream's CPU per 1k at full speed at most this share of the seed's


@dataclass(frozen=True)
class Line:
    """One line of the table: the two relays' figures, the goal, and whether it was met."""

    setting: str
    seed: str
    ours: str
    goal: str
    met: bool | None  # None: not measured


def find(rows: Sequence[dict[str, Any]], code: str, scenario: str, c: int) -> dict[str, Any]:
    for row in rows:
        if (row["code"], row["scenario"], row["concurrency"]) == (code, scenario, c):
            return row
    return {}


def at_most(ours: float | None, bound: float | None) -> bool | None:
    if ours is None or bound is None:
        return None
    return ours <= bound


def ttft_line(rows: Sequence[dict[str, Any]], c: int) -> Line:
    """Added TTFT p50 / p99: met when both of chat-stream's are no more than the seed's."""
    seed, ours = find(rows, SEED, "fast", c), find(rows, OURS, "fast", c)
    checks = [at_most(ours.get(k), seed.get(k)) for k in ("ttft_p50_added", "ttft_p99_added")]
    met = None if None in checks else all(checks)
    return Line(f"added TTFT p50 / p99, c={c}", _ttft(seed), _ttft(ours), "<= seed", met)


def cpu_fake_line(rows: Sequence[dict[str, Any]], c: int = 100) -> Line:
    """CPU per 1k at c=100: met when chat-stream's is at most 2x the fake's own."""
    seed, ours = find(rows, SEED, "fast", c), find(rows, OURS, "fast", c)
    fake = ours.get("upstream_cpu_ms_per_1k_tokens_direct")
    mine = ours.get("service_cpu_ms_per_1k_tokens")
    times = times_of(mine, fake)
    ours_text = _ms(mine) + (f" ({times:.1f}x the fake's own {fake:.0f})" if times else "")
    seed_text = _ms(seed.get("service_cpu_ms_per_1k_tokens"))
    bound = None if fake is None else FAKE_LIMIT_X * fake
    return Line(
        f"CPU per 1k tokens, c={c}", seed_text, ours_text, "<= 2x the fake", at_most(mine, bound)
    )


def cpu_full_line(rows: Sequence[dict[str, Any]], c: int = 10) -> Line:
    """CPU per 1k at full speed: met when chat-stream's is at most half the seed's."""
    seed, ours = find(rows, SEED, "full", c), find(rows, OURS, "full", c)
    theirs = seed.get("service_cpu_ms_per_1k_tokens")
    mine = ours.get("service_cpu_ms_per_1k_tokens")
    share = times_of(mine, theirs)
    ours_text = _ms(mine) + (f" ({share:.2f}x seed)" if share else "")
    bound = None if theirs is None else SEED_SHARE_FULL * theirs
    return Line(
        f"CPU per 1k tokens, full speed, c={c}",
        _ms(theirs),
        ours_text,
        "keep <= 0.5x seed",
        at_most(mine, bound),
    )


def ended_line(rows: Sequence[dict[str, Any]], c: int = 400) -> Line:
    """The paced c=400 turns: met when chat-stream has no error event and no other failure,
    and every refusal came before money."""
    seed, ours = find(rows, SEED, "fast", c), find(rows, OURS, "fast", c)
    split = ours.get("split")
    met = None
    if split:
        before_money = split["refused_before_money"] is not False and (
            split["refused_503"] == split["refused_with_retry_after"]
        )
        met = split["error_events"] == 0 and split["failed"] == 0 and before_money
    return Line(
        f"c={c} paced",
        ended(seed.get("split")),
        ended(split),
        "every refusal before money, 0 error events",
        met,
    )


def ended(split: dict[str, Any] | None) -> str:
    """ "196 done, 14 refused with 503 (before money, Retry-After 14/14), 0 error events"."""
    if not split:
        return "-"
    text = f"{split['done']} done, {split['refused_503']} refused with 503"
    if split["refused_503"]:
        money = {True: "before money", False: "NOT before money", None: "money not counted"}
        text += (
            f" ({money[split['refused_before_money']]},"
            f" Retry-After {split['refused_with_retry_after']}/{split['refused_503']}"
            + "".join(f"; {k} {v}" for k, v in sorted(split.get("refusal_codes", {}).items()))
            + ")"
        )
    text += f", {split['error_events']} error events"
    if split["error_codes"]:
        text += " (" + ", ".join(f"{k} {v}" for k, v in sorted(split["error_codes"].items())) + ")"
    if split["failed"]:
        text += f", {split['failed']} failed " + str(split["failures"])
    return text


def lines(rows: Sequence[dict[str, Any]]) -> list[Line]:
    return [
        ttft_line(rows, 1),
        ttft_line(rows, 10),
        ttft_line(rows, 100),
        cpu_fake_line(rows),
        cpu_full_line(rows),
        ended_line(rows),
    ]


def markdown(rows: Sequence[dict[str, Any]]) -> str:
    """The issue's table, a verdict per line, and the load average of each setting."""
    out = ["| setting | seed (Deno) | chat-stream | goal | met |", "|---|---|---|---|---|"]
    verdict = {True: "yes", False: "**no**", None: "-"}
    for line in lines(rows):
        out.append(
            f"| {line.setting} | {line.seed} | {line.ours} | {line.goal} | {verdict[line.met]} |"
        )
    return "\n".join(out)


def loads(rows: Sequence[dict[str, Any]]) -> str:
    """ "fast c=1: seed 1.2, chat-stream 1.4; …" — the 1-minute load before each relay run."""
    parts: dict[tuple[str, int], list[str]] = {}
    for row in rows:
        key = (row["scenario"], row["concurrency"])
        parts.setdefault(key, []).append(f"{row['code']} {row['load_1m']:.1f}")
    return "; ".join(f"{s} c={c}: " + ", ".join(v) for (s, c), v in parts.items())


def times_of(value: float | None, base: float | None) -> float | None:
    if value is None or not base:
        return None
    return value / base


def _ttft(row: dict[str, Any]) -> str:
    if not row:
        return "-"
    return f"{_signed(row.get('ttft_p50_added'))} / {_signed(row.get('ttft_p99_added'))} ms"


def _signed(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1f}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"
