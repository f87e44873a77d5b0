"""Prompt caching through the service: one scripted 30-turn conversation, caching on vs off.

Starts the LLM stand-in (with its prompt-cache simulation), the local stack (`chat-stream dev`)
and two services (`chat-stream serve`), one with LLM_PROMPT_CACHE=auto and one with
LLM_PROMPT_CACHE=off, everything else default (HISTORY_TOKEN_BUDGET=6000, claude-sonnet-4-6).
The same conversation is played through both, turn by turn, side by side. It reports:

- the input cost per turn with caching on and off (the stand-in's ledger, priced by the service's
  own Pricer: genai-prices, cache reads 0.1x and 5-minute writes 1.25x the input rate), and the
  saving over turns 5-30 (target: at least 60%);
- the cache hit ratio per turn (cache-read tokens / all input tokens);
- the database writes per turn in each arm (rows in messages, usage_logs and private.turns, and
  the WAL bytes the turn wrote), so the extra writes caching costs are visible (expected: none);
- whether every turn's stored usage row equals the stand-in's ledger (tokens of each kind, cost).

Example:
    .venv/bin/python -m bench.caching
    .venv/bin/python -m bench.caching --turns 30 --question-chars 800 --answer-tokens 300 \
        --json .local/bench/caching.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psycopg
from httpx_sse import connect_sse

from bench.procs import Procs, stopped_on_signals
from bench.stack import Guards, Service, Stack
from bench.world import World, message

ARMS = ("auto", "off")
_WORDS = (
    "I want to build a steadier routine around sleep, training and the work that matters to me, "
    "but the week keeps slipping away from me and I end up tired and behind. "
)


@dataclass
class TurnResult:
    turn: int
    input_tokens: int
    cache_read: int
    cache_write: int
    output_tokens: int
    input_cost_usd: Decimal
    cost_usd: Decimal
    rows_written: int
    wal_bytes: int
    stored_matches_ledger: bool

    @property
    def hit_ratio(self) -> float:
        prompt = self.input_tokens + self.cache_read + self.cache_write
        return self.cache_read / prompt if prompt else 0.0


@dataclass
class Arm:
    mode: str
    service: Service
    user_id: str
    token: str
    conversation: str
    turns: list[TurnResult] = field(default_factory=list)


def question(turn: int, chars: int, answer_tokens: int) -> str:
    text = f"Turn {turn}. " + (_WORDS * (chars // len(_WORDS) + 1))[:chars]
    return message(text, tokens=answer_tokens)


def _rows(conn: psycopg.Connection[Any], conversation: str) -> int:
    row = conn.execute(
        "select (select count(*) from public.messages where conversation_id = %s)"
        " + (select count(*) from public.usage_logs where conversation_id = %s)"
        " + (select count(*) from private.turns where conversation_id = %s)",
        (conversation, conversation, conversation),
    ).fetchone()
    return int(row[0]) if row else 0


def _wal(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("select pg_current_wal_lsn() - '0/0'::pg_lsn").fetchone()
    return int(row[0]) if row else 0


def _stream(arm: Arm, text: str, anon_key: str) -> dict[str, Any]:
    headers = {
        "Authorization": f"Bearer {arm.token}",
        "apikey": anon_key,
        "Content-Type": "application/json",
    }
    body = {"message": text, "conversationId": arm.conversation}
    last: dict[str, Any] = {}
    with (
        httpx.Client(timeout=60) as client,
        connect_sse(client, "POST", arm.service.endpoint, json=body, headers=headers) as source,
    ):
        if source.response.status_code != 200:
            source.response.read()
            raise RuntimeError(f"{arm.mode}: HTTP {source.response.status_code}")
        for sse in source.iter_sse():
            last = json.loads(sse.data)
    if last.get("type") != "done":
        raise RuntimeError(f"{arm.mode}: the turn ended with {last}")
    return last


def play_turn(
    arm: Arm, turn: int, text: str, stack: Stack, conn: psycopg.Connection[Any]
) -> TurnResult:
    rows_before, wal_before, since = _rows(conn, arm.conversation), _wal(conn), time.monotonic()
    _stream(arm, text, stack.status["anon_key"])
    wal_after, rows_after = _wal(conn), _rows(conn, arm.conversation)
    ledger = httpx.get(f"{stack.standin_url}/_ledger", params={"since": since}, timeout=10).json()
    if len(ledger) != 1:
        raise RuntimeError(f"{arm.mode} turn {turn}: {len(ledger)} upstream requests, wanted 1")
    entry = ledger[0]
    stored = conn.execute(
        "select tokens_in, cache_read_tokens, cache_write_tokens, tokens_out, cost_usd"
        " from public.usage_logs where conversation_id = %s order by created_at desc, id desc"
        " limit 1",
        (arm.conversation,),
    ).fetchone()
    expected = (
        entry["input_tokens"],
        entry["cache_read_tokens"],
        entry["cache_write_tokens"],
        entry["output_tokens"],
        Decimal(entry["cost_usd"]),
    )
    return TurnResult(
        turn=turn,
        input_tokens=entry["input_tokens"],
        cache_read=entry["cache_read_tokens"],
        cache_write=entry["cache_write_tokens"],
        output_tokens=entry["output_tokens"],
        input_cost_usd=Decimal(entry["input_cost_usd"]),
        cost_usd=Decimal(entry["cost_usd"]),
        rows_written=rows_after - rows_before,
        wal_bytes=wal_after - wal_before,
        stored_matches_ledger=stored is not None and tuple(stored) == expected,
    )


def run(args: argparse.Namespace, procs: Procs) -> dict[str, Any]:
    stack = Stack(procs, procs.run_dir)
    stack.start()
    if stack.keys is None:
        raise RuntimeError("the local stack did not start")
    world = World(stack.superuser_dsn, stack.keys, stack.issuer)
    users = world.ensure_users(len(ARMS), 1)
    arms = [
        Arm(
            mode,
            stack.start_service(1, Guards(), log_level="WARNING", env={"LLM_PROMPT_CACHE": mode}),
            user.id,
            user.token,
            user.conversations[0],
        )
        for mode, user in zip(ARMS, users, strict=True)
    ]
    with psycopg.connect(stack.superuser_dsn, autocommit=True) as conn:
        for turn in range(1, args.turns + 1):
            text = question(turn, args.question_chars, args.answer_tokens)
            for arm in arms:  # the same turn through both services, side by side
                arm.turns.append(play_turn(arm, turn, text, stack, conn))
    return summarise(arms, args)


def summarise(arms: list[Arm], args: argparse.Namespace) -> dict[str, Any]:
    on, off = arms
    window = [i for i, t in enumerate(on.turns) if t.turn >= args.from_turn]

    def cost(arm: Arm) -> Decimal:
        return sum((arm.turns[i].input_cost_usd for i in window), Decimal(0))

    saving = 1 - cost(on) / cost(off) if cost(off) else Decimal(0)
    return {
        "command": "python -m bench.caching " + " ".join(sys.argv[1:]),
        "turns": args.turns,
        "question_chars": args.question_chars,
        "answer_tokens": args.answer_tokens,
        "from_turn": args.from_turn,
        "input_cost_on_usd": str(cost(on)),
        "input_cost_off_usd": str(cost(off)),
        "input_cost_saving": float(saving),
        "stored_usage_equals_ledger": all(t.stored_matches_ledger for a in arms for t in a.turns),
        "arms": {
            a.mode: [asdict(t) | {"hit_ratio": round(t.hit_ratio, 4)} for t in a.turns]
            for a in arms
        },
    }


def render(summary: dict[str, Any]) -> str:
    on, off = summary["arms"]["auto"], summary["arms"]["off"]
    lines = [
        "turn | input $ on | input $ off | hit ratio on | read / write / uncached (on)"
        " | rows on/off | WAL bytes on/off",
    ]
    for a, b in zip(on, off, strict=True):
        lines.append(
            f"{a['turn']:>4} | {a['input_cost_usd']:>10} | {b['input_cost_usd']:>11} |"
            f" {a['hit_ratio']:>12.1%} | {a['cache_read']} / {a['cache_write']} /"
            f" {a['input_tokens']} | {a['rows_written']}/{b['rows_written']} |"
            f" {a['wal_bytes']}/{b['wal_bytes']}"
        )
    extra_rows = sum(a["rows_written"] - b["rows_written"] for a, b in zip(on, off, strict=True))
    lines += [
        "",
        f"input cost, turns {summary['from_turn']}-{summary['turns']}:"
        f" on {summary['input_cost_on_usd']} USD, off {summary['input_cost_off_usd']} USD,"
        f" saving {summary['input_cost_saving']:.1%}",
        f"extra rows written with caching on: {extra_rows} over {len(on)} turns",
        f"every turn's stored usage equals the stand-in's ledger:"
        f" {summary['stored_usage_equals_ledger']}",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.caching",
        description=(__doc__ or "").splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join((__doc__ or "").splitlines()[1:]),
    )
    parser.add_argument("--turns", type=int, default=30)
    parser.add_argument("--question-chars", type=int, default=800)
    parser.add_argument("--answer-tokens", type=int, default=300)
    parser.add_argument("--from-turn", type=int, default=5, help="first turn the saving counts")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    procs = Procs(Path(tempfile.mkdtemp(prefix="bench-caching-")))
    with stopped_on_signals(procs):
        summary = run(args, procs)
    sys.stdout.write(render(summary))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
