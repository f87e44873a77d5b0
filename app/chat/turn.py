"""One accepted turn: iterate `events()` for the answer; the outcome is set however it ends.

The flow is one way. The edge pulls events (`TextDelta`…, then exactly one `Done` or `Failed`)
and encodes them; it never calls back into the use case. A client that leaves simply stops
pulling: the edge closes the iterator, the upstream is closed at once (it costs money), and the
partial answer and its usage are stored before the close returns. Every outcome, including that
one, is stored before the final event is yielded, so `Done.message_id` names a stored message.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from dataclasses import dataclass, replace

from app.chat.accounting import (
    Attempt,
    TurnOutcome,
    build_record,
    estimate_tokens,
    outcome_of,
    trim_history,
)
from app.chat.durability import Lease, persist_shielded
from app.chat.policy import ChatPolicy
from app.chat.relay import Deadlines, no_grace, relay
from app.core.domain import (
    Caller,
    ChatMessage,
    CompletionRequest,
    Done,
    Failed,
    StoredAnswer,
    TextDelta,
    TurnContext,
    TurnEvent,
    TurnRecord,
    TurnStart,
    Usage,
)
from app.core.ports import ChatStore, PriceBook, Provider, Spool
from app.errors import ProviderError
from app.user_messages import user_message


class Cut(enum.Enum):
    """Why a turn was ended before its answer was: the feed sets it, then cancels the turn."""

    LEFT = "left"  # its client left and nobody resumed: stored, no final event
    STOPPED = "stopped"  # its user asked to stop: `Done(stopped=True)` with the answer so far
    DRAINED = "drained"  # the worker drains: `Failed("retry")`, what the client should do


@dataclass(frozen=True)
class TurnParts:
    """What a turn works with; the service builds it once."""

    policy: ChatPolicy
    store: ChatStore
    providers: list[tuple[Provider, str]]
    pricer: PriceBook
    spool: Spool
    head_grace: Callable[[], float] = no_grace  # how late the loop runs (the relay's head grace)


class Turn:
    def __init__(
        self,
        parts: TurnParts,
        caller: Caller,
        start: TurnStart,
        context: TurnContext,
        *,
        started: float,
    ) -> None:
        self._parts, self._caller, self._start, self._context = parts, caller, start, context
        self._started = started  # the request's arrival on the loop clock: budgets count from it
        self.outcome: TurnOutcome | None = None
        self.stored_message_id: str | None = None
        self.cut = Cut.LEFT  # why, if it is cancelled
        self.cut_final: Done | Failed | None = None  # then, the final event it was stored with

    async def events(self) -> AsyncGenerator[TurnEvent, None]:
        if self._context.answer is not None:
            async for event in self._replay(self._context.answer):
                yield event
            return
        parts, start = self._parts, self._start
        policy = parts.policy
        history = trim_history(self._context.history) or (ChatMessage("user", start.content),)
        request = CompletionRequest(
            model=parts.providers[0][1],
            system=policy.system_prompt,
            messages=history,
            max_tokens=policy.max_tokens,
            temperature=policy.temperature,
            user_id=self._caller.user_id,
            conversation_id=start.conversation_id,
        )
        prompt_estimate = estimate_tokens(request.system) + sum(
            estimate_tokens(m.content) for m in history
        )
        deadlines = Deadlines(
            head=self._started + policy.availability_budget,
            total=self._started + policy.total_timeout,
            idle=policy.idle_timeout,
        )
        attempts: list[Attempt] = []
        lease = Lease(
            parts.store,
            self._caller,
            start.turn_id,
            policy.reservation_ttl_seconds,
            output=lambda: sum(a.output_estimate for a in attempts if a.billed),
        )
        error: ProviderError | None = None
        try:
            async with aclosing(
                relay(parts.providers, request, attempts, deadlines, parts.head_grace)
            ) as deltas:
                async for delta in deltas:
                    yield delta
        except ProviderError as exc:
            error = exc
        except (GeneratorExit, asyncio.CancelledError):  # the client left, a stop, a drain
            cut = await self._close(attempts, prompt_estimate, cut=self.cut)
            self.cut_final = self._as_stored(cut.record.final)
            raise
        finally:
            lease.stop()
        outcome = await self._close(attempts, prompt_estimate, error=error)
        final = self._as_stored(outcome.record.final)
        assert final is not None
        try:
            yield final
        except GeneratorExit:
            outcome.disconnected = True
            raise

    async def _close(
        self,
        attempts: list[Attempt],
        prompt_estimate: int,
        *,
        error: ProviderError | None = None,
        cut: Cut | None = None,
    ) -> TurnOutcome:
        parts = self._parts
        record = build_record(
            self._start,
            attempts,
            prompt_estimate,
            parts.pricer,
            failed=error is not None or cut is not None,
            now=asyncio.get_running_loop().time(),
        )
        answer = attempts[-1].parts if attempts else []
        usage = record.usage_rows[-1].usage if record.usage_rows else Usage()
        final: Done | Failed | None = None  # a client that left gets no final event
        if error is not None:
            final = Failed(error.code, error.user_message)
        elif cut is None:
            final = Done(record.message_id, usage)
        elif cut is Cut.STOPPED:
            final = Done(record.message_id, usage, stopped=True)
        elif cut is Cut.DRAINED:
            final = Failed("retry", user_message("retry"))
        record = replace(
            record,
            token_lengths=tuple(len(text.replace("\x00", "")) for text in answer),
            final=final,
        )
        persisted = await persist_shielded(
            parts.store, parts.spool, parts.policy, self._caller, record
        )
        self.outcome = outcome_of(
            record,
            attempts,
            self._started,
            error=error,
            disconnected=cut is not None and cut is not Cut.STOPPED,
            stopped=cut is Cut.STOPPED,
            spooled=persisted.spooled,
        )
        self.stored_message_id = persisted.message_id
        return self.outcome

    def _as_stored(self, final: Done | Failed | None) -> Done | Failed | None:
        """The final event as the client gets it: `done` names the message as stored."""
        if isinstance(final, Done):
            return replace(final, message_id=self.stored_message_id)
        return final

    async def _replay(self, answer: StoredAnswer) -> AsyncGenerator[TurnEvent, None]:
        """An idempotent retry: the answer already stored, as one token, then `done`."""
        record = TurnRecord(
            turn_id=self._start.turn_id,
            conversation_id=self._start.conversation_id,
            message_id=answer.id,
            content=answer.content,
            status="completed",
            usage_rows=(),
        )
        self.outcome = TurnOutcome(record, replayed=True)
        try:
            yield TextDelta(answer.content)
            yield Done(answer.id, Usage(), replayed=True)
        except GeneratorExit:
            self.outcome.disconnected = True
            raise
