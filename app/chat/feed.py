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

from app.chat.policy import ChatPolicy
from app.chat.token_log import TokenLog
from app.chat.turn import Cut, Turn
from app.core.domain import Caller, TextDelta, TurnEvent, TurnSignals
from app.core.ports import SIGNALS_BATCH, ChatStore
from app.errors import AppError

logger = logging.getLogger(__name__)

# Hands one numbered event to the client that started the turn; False when it has left.
Deliver = Callable[[int, TurnEvent], Awaitable[bool]]


class FeedState(enum.Enum):
    ATTACHED = "attached"  # streaming; the client that started the turn listens
    DETACHED = "detached"  # streaming; that client left: grace, followers, checkpoints
    ENDED = "ended"  # finished with its final event (done or error): followers replay it
    CUT_SHORT = "cut_short"  # finished with no final event: a resume asks the database

    @property
    def streaming(self) -> bool:
        return self in (FeedState.ATTACHED, FeedState.DETACHED)


class TurnFeed:
    """One live turn on this worker. Small, since a worker holds a thousand: the tokens are kept in
    a `TokenLog` (no object per event, not even a string per token), and the checkpoints run on one
    timer, with a task only while a checkpoint call is out."""

    __slots__ = (
        "_checking",
        "_cut",
        "_final",
        "_followed_elsewhere",
        "_grace",
        "_nudged",
        "_producer",
        "_saved",
        "_texts",
        "_turn",
        "_waiters",
        "_watch",
        "_watch_task",
        "caller",
        "followers",
        "policy",
        "registry",
        "state",
        "store",
        "turn_id",
    )

    def __init__(
        self,
        turn_id: str,
        caller: Caller,
        store: ChatStore,
        policy: ChatPolicy,
        registry: FeedRegistry,
    ) -> None:
        self.turn_id, self.caller, self.store = turn_id, caller, store
        self.policy, self.registry = policy, registry
        self.state = FeedState.ATTACHED
        self.followers = 0
        self._texts = TokenLog()  # event seq n <= len is TextDelta(_texts[n - 1])
        self._final: TurnEvent | None = None  # then seq len + 1, once the turn has ended with it
        self._cut: Cut | None = None  # why the feed is ending the turn early, once it is
        self._turn: Turn | None = None
        self._waiters: list[asyncio.Future[None]] = []
        self._producer: asyncio.Task[object] | None = None
        self._grace: asyncio.TimerHandle | None = None
        self._watch: asyncio.TimerHandle | None = None  # the next checkpoint
        self._watch_task: asyncio.Task[None] | None = None  # a checkpoint call, while out
        self._checking = False
        self._nudged = False  # nobody here listens any more: checkpoint once the call is back
        self._saved = 0  # tokens checkpointed so far
        self._followed_elsewhere = False  # resumed on another worker: run to the end

    @property
    def seq(self) -> int:
        """The events published so far."""
        return len(self._texts) + (self._final is not None)

    async def run(self, turn: Turn, deliver: Deliver) -> None:
        """Drive `turn` to its end: publish each event, deliver it while the client listens.

        Runs in the task the feed cancels when the turn must end early (nobody resumed, a stop,
        the drain); a stopped or drained turn's final event is published and delivered here.
        """
        self._producer, self._turn = asyncio.current_task(), turn
        self._arm_watch()
        try:
            async with aclosing(turn.events()) as events:
                async for event in events:
                    seq = self.publish(event)
                    if self.state is FeedState.ATTACHED and not await deliver(seq, event):
                        self.detach()
        except asyncio.CancelledError:
            final = turn.cut_final
            if self._cut in (None, Cut.LEFT) or final is None:
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()  # the feed's own cancellation, handled: the turn ends here
            seq = self.publish(final)
            if self.state is FeedState.ATTACHED:
                await deliver(seq, final)
        finally:
            self.finish()

    def publish(self, event: TurnEvent) -> int:
        """Keep `event` for followers; its seq."""
        if isinstance(event, TextDelta):
            self._texts.append(event.text)
        else:
            self._final = event
        if self._waiters:
            self._wake()
        return self.seq

    def stop(self) -> bool:
        """Its user asked to stop: end the turn now, no grace. False when it no longer streams."""
        if not self.state.streaming:
            return False
        self._end(Cut.STOPPED)
        return True

    def interrupt(self) -> None:
        """A deploy's grace ran out: end the turn now (it stores what it has, then `retry`)."""
        self._end(Cut.DRAINED)

    def detach(self) -> None:
        """The starting client left: grace begins (or the turn ends now when there is none)."""
        if self.state is not FeedState.ATTACHED:
            return
        self.state = FeedState.DETACHED
        self._nudge()
        if self.policy.grace_seconds <= 0:
            self._end(Cut.LEFT)
            return
        self._arm_grace()

    def finish(self) -> None:
        attached = self.state is FeedState.ATTACHED
        ended = self._final is not None
        self.state = FeedState.ENDED if ended else FeedState.CUT_SHORT
        self._wake()
        self.registry.finished()
        if self._grace is not None:
            self._grace.cancel()
        if self._watch is not None:
            self._watch.cancel()
        if self._watch_task is not None:
            self._watch_task.cancel()
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
                if position < len(self._texts):
                    position += 1
                    yield position, TextDelta(self._texts[position - 1])
                    continue
                if position == len(self._texts) and self._final is not None:
                    position += 1
                    yield position, self._final
                    continue
                if not self.state.streaming:
                    return
                waiter = asyncio.get_running_loop().create_future()
                self._waiters.append(waiter)
                await waiter
        finally:
            self.followers -= 1
            if not self.followers and self.state is FeedState.DETACHED:
                self._nudge()
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
        self._end(Cut.LEFT)

    def _end(self, cut: Cut) -> None:
        """Cancel the task running the turn, once; the turn stores what it has (`Turn.events`)."""
        if self._cut is not None:
            return
        self._cut = cut
        if self._turn is not None:
            self._turn.cut = cut
        if self._producer is not None and not self._producer.done():
            self._producer.cancel()

    def _listened(self) -> bool:
        return self.state is FeedState.ATTACHED or self.followers > 0

    @property
    def polled(self) -> bool:
        """Streaming with a client listening here: the worker's stop poll asks about it."""
        return self.state.streaming and self._listened()

    def signalled(self, signals: TurnSignals) -> None:
        """What a checkpoint or the stop poll learnt: followed elsewhere, asked to stop."""
        self._followed_elsewhere = self._followed_elsewhere or signals.followed
        if signals.stop and self.stop():
            logger.info("turn %s stopped by its user (seen by a poll)", self.turn_id)

    # The turn's checkpoints, and what they bring back (a stop, a follower elsewhere). While a
    # client listens here, no tokens are written: every `stop_poll_seconds` (0: never) the
    # registry asks, in one call for all such turns of this worker, whether their users stopped
    # them from another worker. Once nobody here listens, the feed writes the new tokens at once,
    # then every `checkpoint_seconds`, for a resume on any worker.
    def _arm_watch(self) -> None:
        """Schedule the next checkpoint for what the turn is now (listened or not)."""
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        if not self.state.streaming:
            return
        if self._listened():  # the worker's stop poll asks about it, with every listened turn
            self.registry.poll_soon()
            return
        loop = asyncio.get_running_loop()
        self._watch = loop.call_later(self.policy.checkpoint_seconds, self._checkpoint_due)

    def _nudge(self) -> None:
        """Nobody here listens now: checkpoint at once (after the call that is out, if one is)."""
        if self._checking:
            self._nudged = True
        elif self.state.streaming:
            self._checkpoint_due()

    def _checkpoint_due(self) -> None:
        self._watch = None
        if self._checking or not self.state.streaming:
            return
        self._checking = True
        self._watch_task = asyncio.ensure_future(self._checkpoint())

    async def _checkpoint(self) -> None:
        try:
            parts = [] if self._listened() else self._texts[self._saved :]
            try:
                signals = await self.store.checkpoint(self.caller, self.turn_id, self._saved, parts)
            except AppError as exc:
                logger.warning("checkpoint of turn %s failed: %s", self.turn_id, exc.code)
            else:
                self._saved += len(parts)
                self.signalled(signals)
        except asyncio.CancelledError:
            return  # the turn ended (`finish`): no next checkpoint
        finally:
            self._checking, self._watch_task = False, None
        if self._nudged and not self._listened():
            self._nudged = False
            self._checkpoint_due()
        else:
            self._nudged = False
            self._arm_watch()


class FeedRegistry:
    """The live turns of this worker, by turn id; and the stop poll of those a client listens to."""

    def __init__(self, policy: ChatPolicy, store: ChatStore) -> None:
        self.policy = policy
        self._store = store
        self._feeds: dict[str, TurnFeed] = {}
        self._ended = asyncio.Event()  # set whenever a turn ends (the drain waits on it)
        self._poll: asyncio.TimerHandle | None = None  # the next stop poll
        self._polling: asyncio.Task[None] | None = None  # a stop poll, while its calls are out

    def poll_soon(self) -> None:
        """Within `stop_poll_seconds`, ask about every turn a client listens to here (one call
        per `SIGNALS_BATCH` turns, not one per turn: a thousand streams, one call a second)."""
        if self._poll is not None or self._polling is not None:
            return
        if self.policy.stop_poll_seconds <= 0:
            return
        loop = asyncio.get_running_loop()
        self._poll = loop.call_later(self.policy.stop_poll_seconds, self._poll_due)

    def _poll_due(self) -> None:
        self._poll = None
        feeds = [feed for feed in self._feeds.values() if feed.polled]
        if feeds:
            self._polling = asyncio.ensure_future(self._poll_once(feeds))

    async def _poll_once(self, feeds: list[TurnFeed]) -> None:
        batches = [feeds[i : i + SIGNALS_BATCH] for i in range(0, len(feeds), SIGNALS_BATCH)]
        try:
            answers = await asyncio.gather(
                *(self._store.signals([(f.caller.user_id, f.turn_id) for f in b]) for b in batches),
                return_exceptions=True,
            )
        finally:
            self._polling = None
        for batch, answer in zip(batches, answers, strict=True):
            if isinstance(answer, AppError):
                logger.warning("stop poll of %d turns failed: %s", len(batch), answer.code)
                continue
            if isinstance(answer, BaseException):  # a bug: say so, and keep polling
                logger.error("stop poll of %d turns failed", len(batch), exc_info=answer)
                continue
            for feed in batch:
                if (signals := answer.get(feed.turn_id)) is not None:
                    feed.signalled(signals)
        if any(feed.polled for feed in self._feeds.values()):
            self.poll_soon()

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
