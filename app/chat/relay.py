"""The upstream relay: every wait bounded, fallback only before the first token.

- Response head within the availability budget (with a fallback configured, the primary gets half
  of what is left, so the fallback can still answer inside the promise).
- Between events, an idle bound; over everything, a total bound. Both are one lazy timer per stream
  (`_Watchdog`): a token only records the time, and the timer, when it fires, re-arms itself for
  what is left or ends the read. Rescheduling a timer per token was a third of the relay's CPU.
- A slow client is not an idle provider: while the consumer is busy with a token, the idle clock
  does not run.
- The availability deadline judges the provider, not our own loop: when it fires, the head gets
  `grace()` more (the worker's measured loop lag), once, since a loop that runs late also reads a
  head that arrived in time late.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, replace

from app.chat.accounting import Attempt, new_attempt
from app.core.domain import CompletionRequest, TextDelta
from app.core.ports import Provider
from app.errors import ProviderError, ProviderTimeout

logger = logging.getLogger(__name__)

# With a fallback configured, the primary gets this share of the availability budget to produce
# a response head, so the fallback still has time to answer within the promise.
PRIMARY_BUDGET_SHARE = 0.5


@dataclass(frozen=True)
class Deadlines:
    """Absolute loop-clock deadlines of one turn, and the idle bound between events."""

    head: float
    total: float
    idle: float


def no_grace() -> float:
    return 0.0


def _head_due(
    loop: asyncio.AbstractEventLoop, timeout: asyncio.Timeout, grace: Callable[[], float]
) -> None:
    """The head deadline passed: expire the wait now, or after `grace()` seconds more."""
    timeout.reschedule(loop.time() + max(grace(), 0.0))


class _Watchdog:
    """One timer per stream for the idle and total bounds, re-armed only when it fires.

    `reading` is True only while the relay awaits the provider's next event; then the task is
    suspended inside that read, so a cancel lands there and nowhere else.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, deadlines: Deadlines) -> None:
        self._loop = loop
        self._idle, self._total = deadlines.idle, deadlines.total
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        self._cancelling = task.cancelling()
        self.reading = False
        self.last = loop.time()
        self.expired: str | None = None
        self._handle = loop.call_at(min(self.last + self._idle, self._total), self._fire)

    def read(self, now: float) -> None:
        self.last, self.reading = now, True

    def _fire(self) -> None:
        now = self._loop.time()
        if now >= self._total:
            self.expired = "the stream passed its total time limit"
        elif self.reading and now - self.last >= self._idle:
            self.expired = "the provider stream went idle"
        else:
            due = self.last + self._idle if self.reading else now + self._idle
            self._handle = self._loop.call_at(min(due, self._total), self._fire)
            return
        if self.reading:
            self._task.cancel()

    def timed_out(self) -> bool:
        """After a CancelledError in the read: was it ours? (Then it is uncancelled.)"""
        return self.expired is not None and self._task.uncancel() <= self._cancelling

    def stop(self) -> None:
        self._handle.cancel()


async def relay(
    providers: list[tuple[Provider, str]],
    request: CompletionRequest,
    attempts: list[Attempt],
    deadlines: Deadlines,
    grace: Callable[[], float] = no_grace,
) -> AsyncGenerator[TextDelta, None]:
    """Yield the answer's deltas from the first provider that answers; record each attempt.

    Raises the last `ProviderError` when no provider can answer (or one fails after its first
    token).
    """
    loop = asyncio.get_running_loop()
    for index, (provider, model) in enumerate(providers):
        last = index == len(providers) - 1
        now = loop.time()
        head_by = deadlines.head if last else now + (deadlines.head - now) * PRIMARY_BUDGET_SHARE
        attempt = new_attempt(provider, model, now)
        attempts.append(attempt)
        try:
            async with AsyncExitStack() as stack:
                try:
                    async with asyncio.timeout(None) as head_timeout:
                        due = loop.call_at(
                            min(head_by, deadlines.total), _head_due, loop, head_timeout, grace
                        )
                        try:
                            events = await stack.enter_async_context(
                                provider.stream(replace(request, model=model))
                            )
                        finally:
                            due.cancel()
                except TimeoutError as exc:
                    raise ProviderTimeout(
                        "no response head within the availability budget"
                    ) from exc
                attempt.head_at = loop.time()
                watchdog = _Watchdog(loop, deadlines)
                stack.callback(watchdog.stop)
                watchdog.read(attempt.head_at)
                try:
                    async for event in events:
                        watchdog.reading = False
                        if isinstance(event, TextDelta):
                            if event.text:
                                if attempt.first_token_at is None:
                                    attempt.first_token_at = loop.time()
                                attempt.parts.append(event.text)
                                attempt.deltas += 1
                                yield event
                        else:
                            attempt.merge(event.usage, event.model, event.provider_cost_usd)
                        watchdog.read(loop.time())
                        if watchdog.expired is not None:  # fired while the client was served
                            raise ProviderTimeout(watchdog.expired)
                except asyncio.CancelledError:
                    if watchdog.timed_out():
                        raise ProviderTimeout(watchdog.expired or "timed out") from None
                    raise
                attempt.completed = True
            return
        except ProviderError as exc:
            attempt.failure = exc.kind
            can_fall_back = (
                not last and attempt.deltas == 0 and exc.retryable and loop.time() < deadlines.head
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
