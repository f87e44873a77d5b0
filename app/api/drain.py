"""Graceful drain on SIGTERM/SIGINT: lose no turn, and take a bounded time doing it.

uvicorn, left alone, stops accepting and then waits for every open stream with no limit, until the
orchestrator's SIGKILL takes the streams (and their usage) with it. Instead, the first signal:
1. marks the worker draining: new turns get 503 with Retry-After, /readyz fails at once, so the
   load balancer moves away;
2. lets the open turns finish for up to SHUTDOWN_GRACE_SECONDS;
3. ends the rest: each stores its partial answer and usage and tells its client to `retry`;
4. replays the outbox once;
5. only then hands the signal to uvicorn, which closes the now idle connections and exits.
Every worker of `serve --workers N` drains itself (each gets the signal).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import Any

from app.chat.feed import FeedRegistry

logger = logging.getLogger(__name__)

Handler = Callable[[int, FrameType | None], Any]
STOP_WAIT_SECONDS = 10.0  # after the grace: how long the interrupted turns get to store


class Drain:
    def __init__(
        self,
        feeds: FeedRegistry,
        *,
        grace_seconds: float,
        flush: Callable[[], Awaitable[object]],
    ) -> None:
        self._feeds, self._grace, self._flush = feeds, grace_seconds, flush
        self.draining = False
        self._task: asyncio.Task[None] | None = None

    def install(self) -> None:
        """Wrap the server's SIGTERM/SIGINT handlers (main thread only: where signals land)."""
        if threading.current_thread() is not threading.main_thread():
            return
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous = signal.getsignal(sig)
            if callable(previous):
                signal.signal(sig, self._handler(loop, previous))

    def _handler(self, loop: asyncio.AbstractEventLoop, previous: Handler) -> Handler:
        def handle(sig: int, frame: FrameType | None) -> None:
            if self.draining:  # a second signal: stop waiting
                previous(sig, frame)
                return
            loop.call_soon_threadsafe(self.start, lambda: previous(sig, frame))

        return handle

    def start(self, then: Callable[[], object] = lambda: None) -> None:
        if self.draining:
            return
        self.draining = True
        logger.warning("draining: %d turn(s) open", len(self._feeds.active()))
        self._task = asyncio.ensure_future(self._run(then))

    async def _run(self, then: Callable[[], object]) -> None:
        try:
            if not await self._feeds.wait_idle(self._grace):
                left = self._feeds.active()
                logger.warning("grace over: ending %d turn(s), each stored as it stands", len(left))
                for feed in left:
                    feed.interrupt()
                await self._feeds.wait_idle(STOP_WAIT_SECONDS)
            try:
                await self._flush()
            except Exception:  # noqa: BLE001 - the drain must hand over to shutdown whatever happens
                logger.exception("flushing the outbox during the drain failed")
        finally:
            then()
