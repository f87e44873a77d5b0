"""Resumable streams: a live turn's events, kept for the client that reconnects.

Every event of a turn is published here once, encoded with its id (`<turn_id>:<seq>`). The client
that started the turn is written to directly, as before. When it leaves, the turn is not cancelled
at once: for `DISCONNECT_GRACE_SECONDS` it keeps streaming into the feed, and a resume on this
worker replays what it missed and follows live. A resume may land on another worker: so while no
client listens, the producer checkpoints the new tokens into the turn's row every
`CHECKPOINT_SECONDS` (only then: a turn whose client stays connected costs no extra write; one
that lost it costs one write per interval until it ends or is cancelled), and a
follower on another worker polls them (`chat_turn_progress`), which also tells this producer to keep
going past the grace window. Nobody back in time: the turn is cancelled and stored as partial,
exactly as a disconnect always was.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from app.api.sse import encode_event
from app.core.domain import Caller, TextDelta, TurnEvent
from app.core.ports import ChatStore
from app.errors import AppError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeedPolicy:
    grace_seconds: float
    checkpoint_seconds: float


@dataclass
class TurnFeed:
    turn_id: str
    caller: Caller
    store: ChatStore
    policy: FeedPolicy
    registry: FeedRegistry
    chunks: list[bytes] = field(default_factory=list)  # event seq n is chunks[n - 1]
    texts: list[str] = field(default_factory=list)  # the tokens, for checkpoints
    attached: bool = True  # the client that started the turn still listens
    done: bool = False
    ended: bool = False  # the final event (done or error) was published
    interrupted: bool = False  # ended by a drain, not by its client
    followers: int = 0
    _waiters: list[asyncio.Future[None]] = field(default_factory=list)
    _producer: asyncio.Task[None] | None = None
    _grace: asyncio.TimerHandle | None = None
    _checkpoints: asyncio.Task[None] | None = None
    _followed_elsewhere: bool = False

    def bind(self, producer: asyncio.Task[None]) -> None:
        self._producer = producer

    def publish(self, event: TurnEvent) -> bytes:
        chunk = encode_event(event, self.turn_id, len(self.chunks) + 1)
        self.chunks.append(chunk)
        if isinstance(event, TextDelta):
            self.texts.append(event.text)
        else:
            self.ended = True
        if self._waiters:
            self._wake()
        return chunk

    def interrupt(self) -> None:
        """A deploy's grace ran out: end the turn now (it stores what it has)."""
        self.interrupted = True
        self._cancel_producer()

    def detach(self) -> None:
        """The starting client left: grace begins (or the turn ends now when there is none)."""
        if not self.attached:
            return
        self.attached = False
        if self.policy.grace_seconds <= 0:
            self._cancel_producer()
            return
        self._arm_grace()
        if self._checkpoints is None and not self.done:
            self._checkpoints = asyncio.ensure_future(self._checkpoint_loop())

    def finish(self) -> None:
        self.done = True
        self._wake()
        self.registry.finished()
        if self._grace is not None:
            self._grace.cancel()
        if self._checkpoints is not None:
            self._checkpoints.cancel()
        if (self.attached and not self.followers) or not self.ended:
            # Nobody will resume it here, or it was cut short: a resume then gets the stored
            # (partial) answer from the database, with the event that says so.
            self.registry.drop(self.turn_id)
        else:
            loop = asyncio.get_running_loop()
            keep = max(self.policy.grace_seconds, 1.0)
            loop.call_later(keep, self.registry.drop, self.turn_id)

    async def follow(self, after: int) -> AsyncIterator[bytes]:
        """The events after seq `after`, then live ones until the turn ends."""
        self.followers += 1
        if self._grace is not None:
            self._grace.cancel()
            self._grace = None
        try:
            position = max(after, 0)
            while True:
                if position < len(self.chunks):
                    batch = self.chunks[position:]
                    position += len(batch)
                    yield b"".join(batch)
                    continue
                if self.done:
                    return
                waiter = asyncio.get_running_loop().create_future()
                self._waiters.append(waiter)
                await waiter
        finally:
            self.followers -= 1
            if not self.followers and not self.attached and not self.done:
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
        if self.followers or self.done:
            return
        if self._followed_elsewhere:  # a worker elsewhere polled lately: give it another round
            self._followed_elsewhere = False
            self._arm_grace()
            return
        logger.info("nobody resumed turn %s within the grace window", self.turn_id)
        self._cancel_producer()

    def _cancel_producer(self) -> None:
        if self._producer is not None and not self._producer.done():
            self._producer.cancel()

    async def _checkpoint_loop(self) -> None:
        saved = 0
        try:
            while not self.done:
                if not self.followers:  # a follower here needs no checkpoint
                    parts = self.texts[saved:]
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

    def __init__(self, policy: FeedPolicy) -> None:
        self.policy = policy
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

    def open(self, turn_id: str, caller: Caller, store: ChatStore) -> TurnFeed:
        feed = TurnFeed(turn_id, caller, store, self.policy, self)
        self._feeds[turn_id] = feed
        return feed

    def active(self) -> list[TurnFeed]:
        """The turns still streaming on this worker."""
        return [feed for feed in self._feeds.values() if not feed.done]

    def get(self, turn_id: str) -> TurnFeed | None:
        return self._feeds.get(turn_id)

    def drop(self, turn_id: str) -> None:
        self._feeds.pop(turn_id, None)

    def __len__(self) -> int:
        return len(self._feeds)
