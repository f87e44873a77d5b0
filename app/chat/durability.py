"""The final write never loses a turn: retries with backoff, then the outbox; shielded from the
cancellation a disconnect brings. And the turn's lease, kept alive while it streams."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from app.chat.policy import ChatPolicy
from app.core.domain import Caller, TurnRecord
from app.core.ports import ChatStore, Spool
from app.errors import AppError, StoreError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Persisted:
    """How the final write went: spooled to the outbox, and the assistant message id as stored
    (None when there is none, e.g. the conversation was deleted while the answer streamed; the
    pre-generated id when spooled, which the replay stores)."""

    spooled: bool
    message_id: str | None


async def persist(
    store: ChatStore, spool: Spool, policy: ChatPolicy, caller: Caller, record: TurnRecord
) -> Persisted:
    """Store the turn: retry with backoff, then spool.

    Always written, even when nothing was generated or billed: it closes the turn, whose
    reservation would otherwise be taken for a dead worker's and billed as abandoned.
    """
    retries = policy.finish_retries
    for attempt in range(retries + 1):
        try:
            result = await store.finish(caller, record)
            return Persisted(spooled=False, message_id=result.message_id)
        except StoreError as exc:
            if attempt == retries:
                logger.warning(
                    "finish failed for turn %s after %d tries: %s",
                    record.turn_id,
                    retries + 1,
                    exc.detail,
                )
                break
            await asyncio.sleep(policy.finish_backoff_seconds * (2**attempt))
        except AppError as exc:  # expired token, RLS refusal: retrying will not help
            logger.warning("finish refused for turn %s (%s); spooling", record.turn_id, exc.code)
            break
    spool.spool(caller.user_id, record)
    return Persisted(spooled=True, message_id=record.message_id)


async def persist_shielded(
    store: ChatStore, spool: Spool, policy: ChatPolicy, caller: Caller, record: TurnRecord
) -> Persisted:
    """`persist` that a second cancellation (shutdown during a disconnect) cannot interrupt."""
    task = asyncio.ensure_future(persist(store, spool, policy, caller, record))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        logger.warning("cancelled again while persisting turn %s; write continues", record.turn_id)
        return Persisted(spooled=False, message_id=record.message_id)


class Lease:
    """Keeps a streaming turn's reservation alive: renewed every half lease by one timer per
    turn, whatever the provider or the client is doing, as the service (the user's token may
    expire mid-answer). Each renewal also records `output()`, the output streamed so far (an
    upper bound), which the turn is billed with if its worker dies. A renewal that fails is
    logged and left: the turn's finish still settles it, and an expired lease only costs an
    estimate that a late finish replaces."""

    def __init__(
        self,
        store: ChatStore,
        caller: Caller,
        turn_id: str,
        seconds: int,
        output: Callable[[], int] = lambda: 0,
    ) -> None:
        self._store, self._caller, self._turn_id = store, caller, turn_id
        self._seconds = seconds
        self._output = output
        self._loop = asyncio.get_running_loop()
        self._task: asyncio.Task[None] | None = None
        self._handle = self._loop.call_later(seconds / 2, self._due)

    def _due(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._renew())
        self._handle = self._loop.call_later(self._seconds / 2, self._due)

    async def _renew(self) -> None:
        try:
            await self._store.renew(self._caller, self._turn_id, self._seconds, self._output())
        except AppError as exc:
            logger.warning("could not renew turn %s: %s", self._turn_id, exc.detail or exc.code)

    def stop(self) -> None:
        self._handle.cancel()
        if self._task is not None and not self._task.done():
            self._task.cancel()
