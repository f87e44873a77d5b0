"""The worker's stop poll: one call asks about every turn a client listens to on this worker.

A thousand open streams used to be a thousand `chat_checkpoint_signals` calls a second; now they
are one `signals` call (per 1,000 turns) every `stop_poll_seconds`, and what it brings back still
reaches each turn: a stop ends that turn only.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import anyio
import pytest

from app.chat.feed import FeedRegistry, TurnFeed
from app.chat.turn import Cut, Turn
from app.core.domain import Caller, Done, TextDelta, TurnEvent, TurnSignals, Usage
from app.core.ports import SIGNALS_BATCH, ChatStore
from app.errors import StoreError
from app.main import chat_policy
from tests.support.database import make_settings

POLL = 0.05
pytestmark = pytest.mark.anyio


@dataclass
class SignalStore:
    """Answers `signals` from `stopped`; counts every call (the per-turn checkpoint too)."""

    stopped: set[str] = field(default_factory=set)
    failures: int = 0  # the first calls that fail
    batches: list[list[tuple[str, str]]] = field(default_factory=list)
    checkpoints: int = 0

    async def signals(self, turns: Sequence[tuple[str, str]]) -> dict[str, TurnSignals]:
        self.batches.append(list(turns))
        if self.failures:
            self.failures -= 1
            raise StoreError("the database is away")
        return {turn_id: TurnSignals(stop=turn_id in self.stopped) for _, turn_id in turns}

    async def checkpoint(self, *_: Any, **__: Any) -> TurnSignals:
        self.checkpoints += 1
        return TurnSignals()


class EndlessTurn:
    """A turn that streams a token every 10 ms until the feed ends it."""

    cut: Cut | None = None

    @property
    def cut_final(self) -> TurnEvent:
        return Done("m-1", Usage(), stopped=self.cut is Cut.STOPPED)

    async def events(self) -> AsyncGenerator[TurnEvent, None]:
        while True:
            yield TextDelta("x")
            await asyncio.sleep(0.01)


@dataclass
class Listener:
    """The client that started the turn: it takes every event (and never leaves)."""

    events: list[TurnEvent] = field(default_factory=list)

    async def __call__(self, seq: int, event: TurnEvent) -> bool:  # noqa: ARG002
        self.events.append(event)
        return True


def registry(store: SignalStore, stop_poll_seconds: float = POLL) -> FeedRegistry:
    policy = chat_policy(
        make_settings(stop_poll_seconds=stop_poll_seconds, checkpoint_seconds=POLL)
    )
    return FeedRegistry(policy, cast(ChatStore, store))


def start(feeds: FeedRegistry, n: int) -> list[tuple[TurnFeed, Listener, asyncio.Task[None]]]:
    running = []
    for i in range(n):
        feed = feeds.open(f"turn-{i}", Caller(f"user-{i % 3}", "token"))
        listener = Listener()
        task = asyncio.ensure_future(feed.run(cast(Turn, EndlessTurn()), listener))
        running.append((feed, listener, task))
    return running


async def until(condition: Callable[[], bool]) -> None:
    """Wait for `condition`, at most 10 s (a loaded machine runs the timers late: no fixed
    sleeps)."""
    with anyio.fail_after(10):
        for _ in range(2000):
            if condition():
                return
            await asyncio.sleep(0.005)
        raise AssertionError("the condition never held")


async def stop_all(running: list[tuple[TurnFeed, Listener, asyncio.Task[None]]]) -> None:
    for feed, _, _ in running:
        feed.interrupt()
    await asyncio.gather(*(task for _, _, task in running), return_exceptions=True)


async def test_one_call_a_poll_asks_about_every_listened_turn() -> None:
    store = SignalStore()
    feeds = registry(store)
    loop = asyncio.get_running_loop()
    started = loop.time()
    running = start(feeds, 30)

    await until(lambda: len(store.batches) >= 3)
    elapsed = loop.time() - started
    await stop_all(running)

    assert len(store.batches) <= elapsed / POLL + 1  # one call per interval, not one per turn
    for batch in store.batches:
        assert sorted(batch) == sorted((f"user-{i % 3}", f"turn-{i}") for i in range(30))
    assert store.checkpoints == 0  # a listened turn writes nothing of its own


async def test_a_stop_the_poll_brings_back_ends_that_turn_only() -> None:
    store = SignalStore(stopped={"turn-7"})
    feeds = registry(store)
    running = start(feeds, 12)

    await until(lambda: running[7][2].done())
    stopped = running[7]
    others = [r for i, r in enumerate(running) if i != 7]

    assert stopped[2].done()
    assert stopped[1].events[-1] == Done("m-1", Usage(), stopped=True)
    assert not any(task.done() for _, _, task in others)
    assert all(feed.state.streaming for feed, _, _ in others)
    await stop_all(others)


async def test_more_turns_than_one_call_takes_are_asked_about_in_batches() -> None:
    store = SignalStore()
    feeds = registry(store)
    running = start(feeds, SIGNALS_BATCH + 5)

    await until(lambda: len(store.batches) >= 2)
    await stop_all(running)

    assert sorted(len(b) for b in store.batches[:2]) == [5, SIGNALS_BATCH]


async def test_a_failed_poll_is_followed_by_the_next_one(caplog: pytest.LogCaptureFixture) -> None:
    store = SignalStore(stopped={"turn-0"}, failures=1)
    feeds = registry(store)
    running = start(feeds, 2)

    await until(lambda: running[0][2].done())

    assert len(store.batches) >= 2
    assert "stop poll of 2 turns failed: store_unavailable" in caplog.text
    assert running[0][2].done()  # the second poll saw the stop
    await stop_all(running[1:])


async def test_no_poll_when_stop_poll_seconds_is_zero() -> None:
    store = SignalStore(stopped={"turn-0"})
    feeds = registry(store, stop_poll_seconds=0)
    running = start(feeds, 3)

    await asyncio.sleep(POLL * 3)
    await stop_all(running)

    assert store.batches == [] and store.checkpoints == 0
