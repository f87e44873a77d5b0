"""One accepted turn: iterate `events()` for the answer; the outcome is set however it ends.

The flow is one way. The edge pulls events (`TextDelta`…, then exactly one `Done` or `Failed`)
and encodes them; it never calls back into the use case. A client that leaves simply stops
pulling: the edge closes the iterator, the upstream is closed at once (it costs money), and the
partial answer and its usage are stored before the close returns. Every outcome, including that
one, is stored before the final event is yielded, so `Done.message_id` names a stored message.
"""

from __future__ import annotations

import asyncio
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
        except (GeneratorExit, asyncio.CancelledError):  # the client left (or shutdown)
            await self._close(attempts, prompt_estimate, disconnected=True)
            raise
        finally:
            lease.stop()
        outcome = await self._close(attempts, prompt_estimate, error=error)
        assert outcome.record.final is not None
        final: TurnEvent = outcome.record.final
        if isinstance(final, Done):
            final = replace(final, message_id=self.stored_message_id)
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
        disconnected: bool = False,
    ) -> TurnOutcome:
        parts = self._parts
        record = build_record(
            self._start,
            attempts,
            prompt_estimate,
            parts.pricer,
            failed=error is not None or disconnected,
            now=asyncio.get_running_loop().time(),
        )
        answer = attempts[-1].parts if attempts else []
        final: Done | Failed | None = None  # a client that left gets no final event
        if error is not None:
            final = Failed(error.code, error.user_message)
        elif not disconnected:
            usage = record.usage_rows[-1].usage if record.usage_rows else Usage()
            final = Done(record.message_id, usage)
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
            disconnected=disconnected,
            spooled=persisted.spooled,
        )
        self.stored_message_id = persisted.message_id
        return self.outcome

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
