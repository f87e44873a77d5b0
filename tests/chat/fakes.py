"""Scripted stand-ins for the use case's ports (pure logic tests; the real adapters have their own
tests over real HTTP and PostgreSQL, and the end-to-end tests wire everything for real)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal

from app.api.sse import ClientGone, encode_event
from app.chat.accounting import TurnOutcome
from app.chat.turn import Turn
from app.core.domain import (
    Caller,
    ChatMessage,
    CompletionRequest,
    FinishResult,
    Price,
    ProviderEvent,
    TextDelta,
    TurnContext,
    TurnRecord,
    TurnStart,
    TurnTerms,
    Usage,
    UsageReport,
)
from app.errors import AppError, ProviderError

Step = ProviderEvent | float | AppError  # an event, a pause in seconds, or a failure


@dataclass
class ScriptedProvider:
    """Plays a script: `head` is awaited before the head (seconds or an error), then `steps`."""

    name: str = "anthropic"
    head: float | ProviderError = 0.0
    steps: list[Step] = field(default_factory=list)
    opened: int = 0
    closed: int = 0
    requests: list[CompletionRequest] = field(default_factory=list)

    def stream(self, request: CompletionRequest):  # type: ignore[no-untyped-def]
        return self._stream(request)

    @asynccontextmanager
    async def _stream(
        self, request: CompletionRequest
    ) -> AsyncIterator[AsyncIterator[ProviderEvent]]:
        self.requests.append(request)
        if isinstance(self.head, ProviderError):
            raise self.head
        await asyncio.sleep(self.head)
        self.opened += 1
        try:
            yield self._events()
        finally:
            self.closed += 1

    async def _events(self) -> AsyncIterator[ProviderEvent]:
        for step in self.steps:
            if isinstance(step, AppError):
                raise step
            if isinstance(step, float | int):
                await asyncio.sleep(step)
                continue
            yield step


def answer(words: list[str], usage: Usage | None = None, model: str = "m-1") -> list[Step]:
    steps: list[Step] = [UsageReport(Usage(input_tokens=100, output_tokens=1), model)]
    steps += [TextDelta(w) for w in words]
    steps.append(UsageReport(usage or Usage(input_tokens=100, output_tokens=len(words)), model))
    return steps


@dataclass
class MemoryStore:
    history: tuple[ChatMessage, ...] = (ChatMessage("user", "hi"),)
    finished: list[TurnRecord] = field(default_factory=list)
    fail_finish: list[AppError] = field(default_factory=list)
    finish_calls: int = 0

    terms: list[TurnTerms] = field(default_factory=list)
    renewals: list[str] = field(default_factory=list)

    async def begin(self, caller: Caller, turn: TurnStart, terms: TurnTerms) -> TurnContext:
        self.terms.append(terms)
        return TurnContext(history=self.history)

    async def renew(
        self, caller: Caller, turn_id: str, lease_seconds: int, output_tokens: int | None = None
    ) -> bool:
        self.renewals.append(turn_id)
        return True

    async def finish(self, caller: Caller, record: TurnRecord) -> FinishResult:
        self.finish_calls += 1
        if self.fail_finish:
            raise self.fail_finish.pop(0)
        self.finished.append(record)
        return FinishResult(message_id=record.message_id)


@dataclass
class ListSpool:
    spooled: list[tuple[str, TurnRecord]] = field(default_factory=list)

    def spool(self, user_id: str, record: TurnRecord) -> None:
        self.spooled.append((user_id, record))


class PerTokenPricer:
    """$1 per million tokens of any kind: easy to check by hand."""

    def price(self, provider: str, model: str, usage: Usage) -> Price:
        return Price(Decimal(usage.total_tokens) / Decimal(1_000_000), "test")

    def worst_case_cost(
        self, provider: str, model: str, input_tokens: int, max_output_tokens: int
    ) -> Decimal:
        return Decimal(input_tokens + max_output_tokens) / Decimal(1_000_000)


async def drive(turn: Turn, sink: Sink) -> TurnOutcome:
    """What the HTTP edge does with a turn: pull its events and write their wire form."""
    try:
        async with aclosing(turn.events()) as events:
            async for event in events:
                await sink(encode_event(event))
    except ClientGone:
        pass
    assert turn.outcome is not None
    return turn.outcome


@dataclass
class Sink:
    chunks: list[bytes] = field(default_factory=list)
    gone_after: int | None = None

    async def __call__(self, chunk: bytes) -> None:
        if self.gone_after is not None and len(self.chunks) >= self.gone_after:
            raise ClientGone
        self.chunks.append(chunk)
