"""A live turn's events, kept for the client that reconnects; and who stops the upstream.

`TurnFeed.run` drives a turn: every event is published here once, numbered (`seq` from 1), and
delivered to the client that started the turn while it listens. When that client leaves, the
turn is not cancelled at once: for the disconnect grace it keeps streaming into the feed, and a
resume on this worker (`follow`) replays what it missed and follows live. A resume may land on
another worker: so while no client listens, the feed checkpoints the new tokens into the turn's
row every `checkpoint_seconds` (only then: a turn whose client stays connected costs no extra
write; one that lost it costs one write per interval until it ends), and a follower elsewhere
reads them (`chat_turn_progress`: its first read marks the turn followed, and this feed then
runs the turn to its end; later reads write nothing).

Nobody back in time, no grace at all, or the drain's deadline: the feed cancels the task that
runs the turn. `Turn.events()` then closes the upstream (it costs money) and stores the partial
answer and its usage, shielded, before the cancellation goes on (`chat/turn.py`).
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass, field

from app.chat.policy import ChatPolicy
from app.chat.turn import Turn
from app.core.domain import Caller, Failed, TextDelta, TurnEvent
from app.core.ports import ChatStore
from app.errors import AppError
from app.user_messages import user_message

logger = logging.getLogger(__name__)

# Hands one numbered event to the client that started the turn; False when it has left.
Deliver = Callable[[int, TurnEvent], Awaitable[bool]]


class FeedState(enum.Enum):
    ATTACHED = "attached"  # streaming; the client that started the turn listens
    DETACHED = "detached"  # streaming; that client left: grace, followers, checkpoints
    INTERRUPTED = "interrupted"  # the drain ended it while its client listened: it gets `retry`
    ENDED = "ended"  # finished with its final event (done or error): followers replay it
    CUT_SHORT = "cut_short"  # finished with no final event: a resume asks the database

    @property
    def streaming(self) -> bool:
        return self not in (FeedState.ENDED, FeedState.CUT_SHORT)


@dataclass
class TurnFeed:
    turn_id: str
    caller: Caller
    store: ChatStore
    policy: ChatPolicy
    registry: FeedRegistry
    events: list[TurnEvent] = field(default_factory=list)  # event seq n is events[n - 1]
    state: FeedState = FeedState.ATTACHED
    followers: int = 0
    _waiters: list[asyncio.Future[None]] = field(default_factory=list)
    _producer: asyncio.Task[object] | None = None
    _grace: asyncio.TimerHandle | None = None
    _checkpoints: asyncio.Task[None] | None = None
    _followed_elsewhere: bool = False  # resumed on another worker: run to the end

    async def run(self, turn: Turn, deliver: Deliver) -> None:
        """Drive `turn` to its end: publish each event, deliver it while the client listens.

        Runs in the task the feed cancels when the turn must stop (no resume in time, the drain).
        """
        self._producer = asyncio.current_task()
        try:
            async with aclosing(turn.events()) as events:
                async for event in events:
                    seq = self.publish(event)
                    if self.state is not FeedState.DETACHED and not await deliver(seq, event):
                        self.detach()
        except asyncio.CancelledError:
            if self.state is not FeedState.INTERRUPTED:
                raise
            # A drain ended the turn (stored as it stands): the client should ask again.
            retry = Failed("retry", user_message("retry"))
            await deliver(self.publish(retry), retry)
        finally:
            self.finish()

    def publish(self, event: TurnEvent) -> int:
        """Keep `event` for followers; its seq."""
        self.events.append(event)
        if self._waiters:
            self._wake()
        return len(self.events)

    def interrupt(self) -> None:
        """A deploy's grace ran out: end the turn now (it stores what it has)."""
        if self.state is FeedState.ATTACHED:
            self.state = FeedState.INTERRUPTED
        self._cancel_producer()

    def detach(self) -> None:
        """The starting client left: grace begins (or the turn ends now when there is none)."""
        if self.state is not FeedState.ATTACHED:
            return
        self.state = FeedState.DETACHED
        if self.policy.grace_seconds <= 0:
            self._cancel_producer()
            return
        self._arm_grace()
        if self._checkpoints is None:
            self._checkpoints = asyncio.ensure_future(self._checkpoint_loop())

    def finish(self) -> None:
        attached = self.state in (FeedState.ATTACHED, FeedState.INTERRUPTED)
        ended = bool(self.events) and not isinstance(self.events[-1], TextDelta)
        self.state = FeedState.ENDED if ended else FeedState.CUT_SHORT
        self._wake()
        self.registry.finished()
        if self._grace is not None:
            self._grace.cancel()
        if self._checkpoints is not None:
            self._checkpoints.cancel()
        if (attached and not self.followers) or not ended:
            # Nobody will resume it here, or it was cut short: a resume then gets the stored
            # (partial) answer from the database, with the event that says so.
            self.registry.drop(self.turn_id)
        else:
            loop = asyncio.get_running_loop()
            keep = max(self.policy.grace_seconds, 1.0)
            loop.call_later(keep, self.registry.drop, self.turn_id)

    async def follow(self, after: int) -> AsyncGenerator[tuple[int, TurnEvent], None]:
        """The events after seq `after`, numbered, then live ones until the turn ends."""
        self.followers += 1
        if self._grace is not None:
            self._grace.cancel()
            self._grace = None
        try:
            position = max(after, 0)
            while True:
                if position < len(self.events):
                    position += 1
                    yield position, self.events[position - 1]
                    continue
                if not self.state.streaming:
                    return
                waiter = asyncio.get_running_loop().create_future()
                self._waiters.append(waiter)
                await waiter
        finally:
            self.followers -= 1
            if not self.followers and self.state is FeedState.DETACHED:
                self._arm_grace()

    # --- internals ----------------------------------------------------------------------------
    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _arm_grace(self) -> None:
        if self._grace is not None:
            self._grace.cancel()
        loop = asyncio.get_running_loop()
        self._grace = loop.call_later(self.policy.grace_seconds, self._grace_over)

    def _grace_over(self) -> None:
        self._grace = None
        if self.followers or not self.state.streaming:
            return
        if self._followed_elsewhere:  # resumed on another worker: it reads until the end
            return
        logger.info("nobody resumed turn %s within the grace window", self.turn_id)
        self._cancel_producer()

    def _cancel_producer(self) -> None:
        if self._producer is not None and not self._producer.done():
            self._producer.cancel()

    async def _checkpoint_loop(self) -> None:
        saved = 0  # tokens checkpointed so far (the events before the final one are all tokens)
        try:
            while self.state.streaming:
                if not self.followers:  # a follower here needs no checkpoint
                    parts = [e.text for e in self.events[saved:] if isinstance(e, TextDelta)]
                    try:
                        followed = await self.store.checkpoint(
                            self.caller, self.turn_id, saved, parts
                        )
                        saved += len(parts)
                        self._followed_elsewhere = self._followed_elsewhere or followed
                    except AppError as exc:
                        logger.warning("checkpoint of turn %s failed: %s", self.turn_id, exc.code)
                await asyncio.sleep(self.policy.checkpoint_seconds)
        except asyncio.CancelledError:
            pass


class FeedRegistry:
    """The live turns of this worker, by turn id."""

    def __init__(self, policy: ChatPolicy, store: ChatStore) -> None:
        self.policy = policy
        self._store = store
        self._feeds: dict[str, TurnFeed] = {}
        self._ended = asyncio.Event()  # set whenever a turn ends (the drain waits on it)

    def finished(self) -> None:
        self._ended.set()

    async def wait_idle(self, timeout: float) -> bool:  # noqa: ASYNC109 - a deadline, not I/O
        """Until no turn streams here, at most `timeout` seconds; True when none does."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.active():
            self._ended.clear()
            left = deadline - loop.time()
            if left <= 0:
                return False
            try:
                await asyncio.wait_for(self._ended.wait(), left)
            except TimeoutError:
                return not self.active()
        return True

    def open(self, turn_id: str, caller: Caller) -> TurnFeed:
        feed = TurnFeed(turn_id, caller, self._store, self.policy, self)
        self._feeds[turn_id] = feed
        return feed

    def active(self) -> list[TurnFeed]:
        """The turns still streaming on this worker."""
        return [feed for feed in self._feeds.values() if feed.state.streaming]

    def get(self, turn_id: str) -> TurnFeed | None:
        return self._feeds.get(turn_id)

    def drop(self, turn_id: str) -> None:
        self._feeds.pop(turn_id, None)

    def __len__(self) -> int:
        return len(self._feeds)
