"""What a turn cost: one usage row per billed upstream attempt, reported or estimated.

The seed lost usage whenever a stream ended badly. Here every attempt the provider may have billed
gets a row: its reported counters when the stream finished, else the largest it reported so far,
with output estimated from what was relayed and the row marked `estimated`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from decimal import Decimal

from app.chat.token_log import TokenLog
from app.core.domain import (
    ChatMessage,
    TurnRecord,
    TurnStart,
    TurnStatus,
    Usage,
    UsageRow,
)
from app.core.ports import PriceBook, Provider
from app.errors import AppError


def estimate_tokens(text: str) -> int:
    """An upper bound on the tokens of text a provider did not count for us: its UTF-8 bytes.

    Byte-level BPE tokenizers (Anthropic's, OpenAI's) make every token of at least one byte, so
    no text (emoji, CJK, combining marks) can make this smaller than what the provider bills;
    English is counted about four times too high. The database counts the same way
    (`private.history_window`, migration 20261206000210).
    """
    return len(text.encode("utf-8", "surrogatepass"))


def trim_history(history: tuple[ChatMessage, ...]) -> tuple[ChatMessage, ...]:
    """Providers want the conversation to open with the user: drop leading assistant turns."""
    start = 0
    while start < len(history) and history[start].role != "user":
        start += 1
    return history[start:]


@dataclass
class Attempt:
    """One upstream request: what it reported, what it sent, when (loop clock)."""

    attempt_id: str
    provider: Provider
    model: str
    started: float
    head_at: float | None = None
    first_token_at: float | None = None
    ended_at: float | None = None
    parts: TokenLog = field(default_factory=TokenLog)
    deltas: int = 0
    reported: Usage | None = None
    reported_model: str | None = None
    reported_cost: Decimal | None = None  # the provider's own figure, when it sends one
    completed: bool = False
    failure: str | None = None  # the error code this attempt ended with

    @property
    def text(self) -> str:
        return self.parts.text()

    def merge(self, usage: Usage, model: str | None, cost: Decimal | None = None) -> None:
        """Counters only grow: keep the largest value each field has been reported with."""
        if cost is not None:
            self.reported_cost = max(cost, self.reported_cost or cost)
        prev = self.reported or Usage()
        self.reported = Usage(
            input_tokens=max(prev.input_tokens, usage.input_tokens),
            output_tokens=max(prev.output_tokens, usage.output_tokens),
            cache_read_tokens=max(prev.cache_read_tokens, usage.cache_read_tokens),
            cache_write_tokens=max(prev.cache_write_tokens, usage.cache_write_tokens),
        )
        self.reported_model = model or self.reported_model

    @property
    def billed(self) -> bool:
        """Did the provider do (and charge for) any work? No head, no bill."""
        if self.head_at is None:
            return False
        return self.deltas > 0 or (self.reported is not None and self.reported.total_tokens > 0)

    @property
    def output_estimate(self) -> int:
        """The output so far, an upper bound: what was reported, or the deltas or the bytes."""
        reported = self.reported.output_tokens if self.reported else 0
        return max(reported, self.deltas, estimate_tokens(self.text))

    def usage(self, prompt_estimate: int) -> Usage:
        """Reported usage when the stream finished; otherwise reported-or-estimated, marked."""
        if self.completed and self.reported is not None:
            return self.reported
        reported = self.reported or Usage()
        return Usage(
            input_tokens=reported.input_tokens
            or (0 if reported.prompt_tokens else prompt_estimate),
            output_tokens=self.output_estimate,
            cache_read_tokens=reported.cache_read_tokens,
            cache_write_tokens=reported.cache_write_tokens,
            estimated=True,
        )


def new_attempt(provider: Provider, model: str, now: float) -> Attempt:
    return Attempt(attempt_id=str(uuid.uuid4()), provider=provider, model=model, started=now)


def build_record(
    turn: TurnStart,
    attempts: list[Attempt],
    prompt_estimate: int,
    pricer: PriceBook,
    *,
    failed: bool,
    now: float,
) -> TurnRecord:
    """The turn as stored: the last attempt's text (if any) and a row per billed attempt."""
    answer = attempts[-1] if attempts else None
    text = answer.text if answer else ""
    status: TurnStatus = "completed"
    if failed or (answer is not None and not answer.completed):
        status = "partial" if text else "error"
    rows = []
    for attempt in attempts:
        if not attempt.billed:
            continue
        usage = attempt.usage(prompt_estimate)
        model = attempt.reported_model or attempt.model
        attempt_status: TurnStatus = (
            "completed" if attempt.completed else ("partial" if attempt.deltas else "error")
        )
        rows.append(
            UsageRow(
                attempt_id=attempt.attempt_id,
                provider=attempt.provider.name,
                model=model,
                usage=usage,
                price=pricer.price(attempt.provider.name, model, usage),
                status=attempt_status,
                ttft_ms=ms(attempt.first_token_at, attempt.started),
                duration_ms=ms(attempt.ended_at or now, attempt.started) or 0,
                provider_cost_usd=attempt.reported_cost,
            )
        )
    return TurnRecord(
        turn_id=turn.turn_id,
        conversation_id=turn.conversation_id,
        message_id=str(uuid.uuid4()) if text else None,
        content=text,
        status=status,
        usage_rows=tuple(rows),
    )


@dataclass
class TurnOutcome:
    """What happened, for logs and metrics (observed once, at the edge)."""

    record: TurnRecord
    error: AppError | None = None
    disconnected: bool = False
    spooled: bool = False
    ttft_ms: int | None = None
    tokens_relayed: int = 0
    upstream_failures: list[str] = field(default_factory=list)
    replayed: bool = False  # a retried turn answered from the database, no provider call
    stopped: bool = False  # its user stopped it

    @property
    def label(self) -> str:
        """completed | partial | error | disconnected | stopped | replayed — for logs, metrics."""
        if self.disconnected:
            return "disconnected"
        if self.stopped:
            return "stopped"
        return "replayed" if self.replayed else self.record.status


def outcome_of(
    record: TurnRecord,
    attempts: list[Attempt],
    started: float,
    *,
    error: AppError | None = None,
    disconnected: bool = False,
    stopped: bool = False,
    spooled: bool = False,
) -> TurnOutcome:
    answer = attempts[-1] if attempts else None
    return TurnOutcome(
        record=record,
        error=error,
        disconnected=disconnected,
        stopped=stopped,
        spooled=spooled,
        ttft_ms=ms(answer.first_token_at, started) if answer else None,
        tokens_relayed=sum(a.deltas for a in attempts),
        upstream_failures=[a.failure for a in attempts if a.failure],
    )


def ms(end: float | None, start: float) -> int | None:
    return None if end is None else max(0, round((end - start) * 1000))
