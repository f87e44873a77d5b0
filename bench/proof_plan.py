"""The load proof's requests and how each must end (pure: no processes, no network).

Every request is the first turn of its own conversation, padded so that its prompt is exactly
four characters (one stand-in token) longer than the one before: the stand-in's ledger entry,
the stored usage row and the request then share one key, the input token count.

A planned share of slow turns goes to a second, doomed service that the proof kills mid-stream:
the database records each as an `abandoned` estimate once its lease runs out (`proof_check`).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from bench.world import message

PROMPT_CHARS = 480  # longer than any directive; request i is PROMPT_CHARS + 4 * i characters
CHARS_PER_STANDIN_TOKEN = 4

# Faults the stand-in injects, by when they strike. Before the head: no bill, no usage row.
BEFORE_HEAD = ("529", "500", "429", "refuse", "hang")
MID_STREAM = ("drop", "error", "stall", "truncate", "malformed")
KILLED = "killed"  # streamed by the doomed worker, which is killed mid-stream
CUT = "cut"  # the client outcome of a killed turn: the stream stopped without an end event

# The killed turns start in the first KILLED_SEND_SHARE of the run and stream for at least
# KILLED_MIN_TOKENS * KILLED_DELAY_MS (30 s): all of them are mid-stream when the worker dies.
KILLED_SEND_SHARE = 0.1
KILLED_MIN_TOKENS, KILLED_MAX_TOKENS = 300, 400
KILLED_DELAY_MS = 100

# Out of 100 requests: a normal answer, a client that leaves, each fault.
MIX: dict[str, int] = {
    "normal": 58,
    "leave": 12,
    KILLED: 2,
    "drop": 4,
    "error": 4,
    "stall": 3,
    "truncate": 3,
    "malformed": 2,
    "529": 3,
    "500": 2,
    "429": 2,
    "refuse": 3,
    "hang": 2,
}


@dataclass(frozen=True)
class ProofRequest:
    index: int
    kind: str  # a key of MIX
    tokens: int
    delay_ms: int
    after: int  # tokens before a mid-stream fault
    leave_at: int | None  # the client leaves after this many tokens
    send_at: float  # seconds from the start of the run

    @property
    def fault(self) -> str | None:
        return self.kind if self.kind in BEFORE_HEAD or self.kind in MID_STREAM else None

    @property
    def billed(self) -> bool:
        """Did the upstream start an answer (and so charge for it)?"""
        return self.kind not in BEFORE_HEAD

    @property
    def killed(self) -> bool:
        """Streamed by the doomed worker, which the proof kills mid-stream."""
        return self.kind == KILLED

    def text(self) -> str:
        knobs: dict[str, object] = {"tokens": self.tokens, "delay_ms": self.delay_ms}
        if self.fault:
            knobs |= {"fault": self.fault, "after": self.after, "hold_s": 60}
        head = message(f"Proof {self.index:03d}.", **knobs)
        size = PROMPT_CHARS + CHARS_PER_STANDIN_TOKEN * self.index
        if len(head) >= size:
            raise ValueError(f"directive longer than the padded prompt: {head!r}")
        return head + " " + "." * (size - len(head) - 1)

    def expected(self) -> tuple[str, int | None]:
        """(client outcome, tokens it must have seen, or None when any count will do)."""
        if self.kind == "normal":
            return "done", self.tokens
        if self.kind == "leave":
            return "left", self.leave_at
        if self.kind == KILLED:
            return CUT, None  # the connection dies with the worker, after at least one token
        if self.kind in BEFORE_HEAD:
            return "error_event", 0
        if self.kind == "malformed":
            return "error_event", self.after  # the service stops at the broken event
        return "error_event", self.after


def plan_requests(
    count: int, seconds: float, seed: int, *, min_stream_s: float = 0.0
) -> list[ProofRequest]:
    """`count` requests spread evenly over `seconds`, kinds drawn from MIX in proportion; with
    `min_stream_s`, each answer is slowed (its `delay_ms`) to stream at least that long."""
    rng = random.Random(seed)
    kinds = [kind for kind, share in MIX.items() for _ in range(share)]
    pool = [kinds[i % len(kinds)] for i in range(count)]
    rng.shuffle(pool)
    requests = []
    for index, kind in enumerate(pool):
        tokens = rng.randint(20, 200)
        after = rng.randint(0, tokens - 1) if kind in MID_STREAM else 0
        leave_at = rng.randint(1, tokens - 1) if kind == "leave" else None
        delay_ms = max(rng.randint(20, 50), math.ceil(1000 * min_stream_s / tokens))
        send_at = seconds * index / count + rng.uniform(0, seconds / count)
        if kind == KILLED:
            tokens = rng.randint(KILLED_MIN_TOKENS, KILLED_MAX_TOKENS)
            delay_ms = KILLED_DELAY_MS
            send_at *= KILLED_SEND_SHARE
        requests.append(
            ProofRequest(
                index=index,
                kind=kind,
                tokens=tokens,
                delay_ms=delay_ms,
                after=after,
                leave_at=leave_at,
                send_at=send_at,
            )
        )
    return requests
