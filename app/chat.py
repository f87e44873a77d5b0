"""The chat turn: begin → stream → finish, with every outcome accounted for.

What the seed got wrong and this fixes (DESIGN §11): the upstream is cancelled the moment the
client leaves; a partial answer and its usage are stored on disconnect, stall or provider error;
every wait is bounded (availability budget to the response head, idle between events, total);
fallback happens only before the first token; the final write retries, then spools to a durable
outbox, so no usage row is lost.
"""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field, replace

from app.config import Settings
from app.domain import (
    Caller,
    Caps,
    ChatMessage,
    CompletionRequest,
    Reservation,
    StoredAnswer,
    TextDelta,
    TurnContext,
    TurnRecord,
    TurnStart,
    TurnStatus,
    TurnTerms,
    Usage,
    UsageRow,
)
from app.errors import AppError, ProviderError, ProviderTimeout, StoreError
from app.ports import ChatStore, Pricer, Provider, Spool
from app.sse import ClientGone, encode, encode_token

logger = logging.getLogger(__name__)

Emit = Callable[[bytes], Awaitable[None]]

# With a fallback configured, the primary gets this share of the availability budget to produce
# a response head, so the fallback still has time to answer within the promise.
PRIMARY_BUDGET_SHARE = 0.5
CHARS_PER_TOKEN = 4


def estimate_tokens(text: str) -> int:
    """Rough token count for text a provider did not count for us (~4 characters a token)."""
    return math.ceil(len(text) / CHARS_PER_TOKEN) if text else 0


def trim_history(history: tuple[ChatMessage, ...]) -> tuple[ChatMessage, ...]:
    """Providers want the conversation to open with the user: drop leading assistant turns."""
    start = 0
    while start < len(history) and history[start].role != "user":
        start += 1
    return history[start:]


@dataclass
class _Attempt:
    """One upstream request: what it reported, what it sent, when."""

    attempt_id: str
    provider: Provider
    model: str
    started: float
    head_at: float | None = None
    first_token_at: float | None = None
    ended_at: float | None = None
    parts: list[str] = field(default_factory=list)
    deltas: int = 0
    reported: Usage | None = None
    reported_model: str | None = None
    completed: bool = False
    failure: str | None = None  # the error code this attempt ended with

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def merge(self, usage: Usage, model: str | None) -> None:
        """Counters only grow: keep the largest value each field has been reported with."""
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

    def usage(self, prompt_estimate: int) -> Usage:
        """Reported usage when the stream finished; otherwise reported-or-estimated, marked."""
        if self.completed and self.reported is not None:
            return self.reported
        reported = self.reported or Usage()
        estimated_output = max(self.deltas, estimate_tokens(self.text))
        return Usage(
            input_tokens=reported.input_tokens
            or (0 if reported.prompt_tokens else prompt_estimate),
            output_tokens=max(reported.output_tokens, estimated_output),
            cache_read_tokens=reported.cache_read_tokens,
            cache_write_tokens=reported.cache_write_tokens,
            estimated=True,
        )


@dataclass
class TurnOutcome:
    """What happened, for the done/error event, logs and metrics."""

    record: TurnRecord
    error: AppError | None
    disconnected: bool
    spooled: bool
    ttft_ms: int | None
    tokens_relayed: int
    upstream_failures: list[str] = field(default_factory=list)
    replayed: bool = False  # a retried turn answered from the database, no provider call

    @property
    def label(self) -> str:
        """completed | partial | error | disconnected | replayed — for logs and metrics."""
        if self.disconnected:
            return "disconnected"
        return "replayed" if self.replayed else self.record.status


class ChatService:
    def __init__(
        self,
        *,
        settings: Settings,
        store: ChatStore,
        providers: list[tuple[Provider, str]],
        pricer: Pricer,
        spool: Spool,
    ) -> None:
        if not providers:
            raise ValueError("at least one provider is required")
        self.settings = settings
        self.store = store
        self.providers = providers
        self.pricer = pricer
        self.spool = spool

    def terms_for(self, turn: TurnStart) -> TurnTerms:
        """The terms `begin` decides with, all from settings (a user's `user_limits` row wins in
        the database). The reservation is the worst case this turn could cost: a full history
        window and every output token on the dearest configured model. If the worker dies, the
        turn is billed at the primary model's input rate on the estimated prompt."""
        s = self.settings
        system_tokens = estimate_tokens(s.system_prompt)
        input_bound = s.history_token_budget + system_tokens + estimate_tokens(turn.content)
        reserve = max(
            self.pricer.worst_case_cost(provider.name, model, input_bound, s.llm_max_tokens)
            for provider, model in self.providers
        )
        primary, model = self.providers[0]
        return TurnTerms(
            reservation=Reservation(
                usd=reserve,
                provider=primary.name,
                model=model,
                input_usd_per_mtok=self.pricer.worst_case_cost(primary.name, model, 10**6, 0),
                system_tokens=system_tokens,
                lease_seconds=s.reservation_ttl_seconds,
            ),
            caps=Caps(
                daily_usd=s.daily_budget_usd,
                monthly_usd=s.monthly_budget_usd,
                rate_per_minute=s.rate_limit_per_minute,
                max_streams=s.max_concurrent_streams,
            ),
            history_tokens=s.history_token_budget,
            history_messages=s.history_max_messages,
        )

    async def begin(self, caller: Caller, turn: TurnStart) -> TurnContext:
        """The first round trip: ownership, guards and reservation, user message, history.

        Errors here (404, 409, 429, 503) become JSON responses: nothing has been streamed yet.
        """
        return await self.store.begin(caller, turn, self.terms_for(turn))

    async def run_turn(
        self,
        caller: Caller,
        turn: TurnStart,
        context: TurnContext,
        emit: Emit,
        *,
        started: float,
        report: Callable[[TurnOutcome], None] | None = None,
    ) -> TurnOutcome:
        """Stream the answer through `emit`, then persist; always persists, even when cancelled.

        `started` is the request's arrival on the loop clock (`asyncio` loop time): the
        availability budget and time to first token count from there. `report` receives the
        outcome in every case, including a cancellation (which then propagates).
        """
        if context.answer is not None:
            return await self._send_stored_answer(turn, context.answer, emit, report)
        history = trim_history(context.history) or (ChatMessage("user", turn.content),)
        request = CompletionRequest(
            model=self.providers[0][1],
            system=self.settings.system_prompt,
            messages=history,
            max_tokens=self.settings.llm_max_tokens,
            temperature=self.settings.llm_temperature,
            user_id=caller.user_id,
        )
        prompt_estimate = estimate_tokens(request.system) + sum(
            estimate_tokens(m.content) for m in history
        )
        attempts: list[_Attempt] = []
        error: AppError | None = None
        disconnected = False
        lease = _Lease(self.store, caller, turn.turn_id, self.settings.reservation_ttl_seconds)
        try:
            await self._relay(request, attempts, emit, started, lease)
        except ProviderError as exc:
            error = exc
        except ClientGone:
            disconnected = True
        except asyncio.CancelledError:
            outcome = await self._finish_cancelled(caller, turn, attempts, prompt_estimate, started)
            if report is not None:
                report(outcome)
            raise
        finally:
            lease.stop()
        loop_now = asyncio.get_running_loop().time()
        record = self._record(turn, attempts, prompt_estimate, error, disconnected, loop_now)
        spooled = await self._persist(caller, record)
        outcome = self._outcome(record, attempts, error, disconnected, spooled, started)
        return await _conclude(outcome, self._final_event(outcome), emit, report)

    async def _send_stored_answer(
        self,
        turn: TurnStart,
        answer: StoredAnswer,
        emit: Emit,
        report: Callable[[TurnOutcome], None] | None,
    ) -> TurnOutcome:
        """An idempotent retry: the answer already stored, as one token event, then `done`."""
        record = TurnRecord(
            turn_id=turn.turn_id,
            conversation_id=turn.conversation_id,
            message_id=answer.id,
            content=answer.content,
            status="completed",
            usage_rows=(),
        )
        outcome = TurnOutcome(record, None, False, False, None, 0, replayed=True)
        events = encode_token(answer.content) + _done_event(answer.id, Usage(), replayed=True)
        return await _conclude(outcome, events, emit, report)

    # --- streaming ----------------------------------------------------------------------------
    async def _relay(
        self,
        request: CompletionRequest,
        attempts: list[_Attempt],
        emit: Emit,
        started: float,
        lease: _Lease,
    ) -> None:
        loop = asyncio.get_running_loop()
        head_deadline = started + self.settings.llm_availability_budget
        total_deadline = started + self.settings.llm_total_timeout
        idle = self.settings.llm_idle_timeout
        for index, (provider, model) in enumerate(self.providers):
            last = index == len(self.providers) - 1
            now = loop.time()
            budget_end = (
                head_deadline if last else now + (head_deadline - now) * PRIMARY_BUDGET_SHARE
            )
            attempt = _Attempt(
                attempt_id=str(uuid.uuid4()),
                provider=provider,
                model=model,
                started=now,
            )
            attempts.append(attempt)
            try:
                await self._stream_attempt(
                    replace(request, model=model),
                    attempt,
                    emit,
                    budget_end,
                    total_deadline,
                    idle,
                    lease,
                )
                return
            except ProviderError as exc:
                attempt.failure = exc.code
                can_fall_back = (
                    not last
                    and attempt.deltas == 0
                    and exc.retryable
                    and loop.time() < head_deadline
                )
                logger.warning(
                    "provider %s/%s failed (%s)%s",
                    provider.name,
                    model,
                    exc.detail or exc.code,
                    "; falling back" if can_fall_back else "",
                )
                if not can_fall_back:
                    raise
            finally:
                attempt.ended_at = loop.time()

    async def _stream_attempt(
        self,
        request: CompletionRequest,
        attempt: _Attempt,
        emit: Emit,
        head_deadline: float,
        total_deadline: float,
        idle: float,
        lease: _Lease,
    ) -> None:
        loop = asyncio.get_running_loop()
        async with AsyncExitStack() as stack:
            try:
                async with asyncio.timeout_at(min(head_deadline, total_deadline)):
                    events = await stack.enter_async_context(attempt.provider.stream(request))
            except TimeoutError as exc:
                raise ProviderTimeout("no response head within the availability budget") from exc
            attempt.head_at = loop.time()
            try:
                async with asyncio.timeout_at(min(loop.time() + idle, total_deadline)) as deadline:
                    async for event in events:
                        if isinstance(event, TextDelta):
                            if not event.text:
                                continue
                            now = loop.time()
                            if attempt.first_token_at is None:
                                attempt.first_token_at = now
                            if now >= lease.due:
                                lease.renew(now)
                            attempt.parts.append(event.text)
                            attempt.deltas += 1
                            deadline.reschedule(total_deadline)  # a slow client is not idle
                            await emit(encode_token(event.text))
                        else:
                            attempt.merge(event.usage, event.model)
                        deadline.reschedule(min(loop.time() + idle, total_deadline))
            except TimeoutError as exc:
                raise ProviderTimeout("the provider stream went idle") from exc
            attempt.completed = True

    # --- accounting ---------------------------------------------------------------------------
    def _record(
        self,
        turn: TurnStart,
        attempts: list[_Attempt],
        prompt_estimate: int,
        error: AppError | None,
        disconnected: bool,
        now: float,
    ) -> TurnRecord:
        answer = attempts[-1] if attempts else None
        text = answer.text if answer else ""
        status: TurnStatus = "completed"
        if error is not None or disconnected or (answer is not None and not answer.completed):
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
                    price=self.pricer.price(attempt.provider.name, model, usage),
                    status=attempt_status,
                    ttft_ms=_ms(attempt.first_token_at, attempt.started),
                    duration_ms=_ms(attempt.ended_at or now, attempt.started) or 0,
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

    async def _finish_cancelled(
        self,
        caller: Caller,
        turn: TurnStart,
        attempts: list[_Attempt],
        prompt_estimate: int,
        started: float,
    ) -> TurnOutcome:
        """The client left (or shutdown): persist what happened, shielded from the cancel."""
        now = asyncio.get_running_loop().time()
        record = self._record(turn, attempts, prompt_estimate, None, True, now)
        task = asyncio.ensure_future(self._persist(caller, record))
        spooled = False
        try:
            spooled = await asyncio.shield(task)
        except asyncio.CancelledError:
            logger.warning(
                "cancelled again while persisting turn %s; write continues", turn.turn_id
            )
        return self._outcome(record, attempts, None, True, spooled, started)

    async def _persist(self, caller: Caller, record: TurnRecord) -> bool:
        """Store the turn: retry with backoff, then spool. Returns True when spooled.

        Always written, even when nothing was generated or billed: it closes the turn, whose
        reservation would otherwise be taken for a dead worker's and billed as abandoned.
        """
        retries = self.settings.finish_retries
        for attempt in range(retries + 1):
            try:
                await self.store.finish(caller, record)
                return False
            except StoreError as exc:
                if attempt == retries:
                    logger.warning(
                        "finish failed for %s after %d tries: %s",
                        record.turn_id,
                        retries + 1,
                        exc.detail,
                    )
                    break
                await asyncio.sleep(self.settings.finish_backoff_seconds * (2**attempt))
            except AppError as exc:  # expired token, RLS refusal: retrying will not help
                logger.warning("finish refused for %s (%s); spooling", record.turn_id, exc.code)
                break
        self.spool.spool(caller.user_id, record)
        return True

    def _outcome(
        self,
        record: TurnRecord,
        attempts: list[_Attempt],
        error: AppError | None,
        disconnected: bool,
        spooled: bool,
        started: float,
    ) -> TurnOutcome:
        answer = attempts[-1] if attempts else None
        return TurnOutcome(
            record=record,
            error=error,
            disconnected=disconnected,
            spooled=spooled,
            ttft_ms=_ms(answer.first_token_at, started) if answer else None,
            tokens_relayed=sum(a.deltas for a in attempts),
            upstream_failures=[a.failure for a in attempts if a.failure],
        )

    def _final_event(self, outcome: TurnOutcome) -> bytes:
        if outcome.error is not None:
            return encode(
                {"type": "error", "message": outcome.error.user_message, "code": outcome.error.code}
            )
        record = outcome.record
        answer = record.usage_rows[-1].usage if record.usage_rows else Usage()
        return _done_event(record.message_id, answer)


def _done_event(message_id: str | None, usage: Usage, *, replayed: bool = False) -> bytes:
    event: dict[str, object] = {
        "type": "done",
        "messageId": message_id,
        "usage": {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.output_tokens,
            "total_tokens": usage.total_tokens,
        },
    }
    if replayed:
        event["replayed"] = True
    return encode(event)


async def _conclude(
    outcome: TurnOutcome,
    final: bytes | None,
    emit: Emit,
    report: Callable[[TurnOutcome], None] | None,
) -> TurnOutcome:
    """Send the closing bytes unless the client is gone, then report the outcome once."""
    if final is not None and not outcome.disconnected:
        try:
            await emit(final)
        except ClientGone:
            outcome.disconnected = True
    if report is not None:
        report(outcome)
    return outcome


class _Lease:
    """Keeps a streaming turn's reservation alive: renewed at most every half lease, lazily,
    from the token loop (no timer per turn). A renewal that fails is logged and left: the
    turn's finish still settles it, and an expired lease only costs an estimate later replaced."""

    def __init__(self, store: ChatStore, caller: Caller, turn_id: str, seconds: int) -> None:
        self._store, self._caller, self._turn_id = store, caller, turn_id
        self._seconds = seconds
        self.due = asyncio.get_running_loop().time() + seconds / 2
        self._task: asyncio.Task[None] | None = None

    def renew(self, now: float) -> None:
        self.due = now + self._seconds / 2
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._renew())

    async def _renew(self) -> None:
        try:
            await self._store.renew(self._caller, self._turn_id, self._seconds)
        except AppError as exc:
            logger.warning("could not renew turn %s: %s", self._turn_id, exc.detail or exc.code)

    def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()


def _ms(end: float | None, start: float) -> int | None:
    return None if end is None else max(0, round((end - start) * 1000))
