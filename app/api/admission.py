"""Admission control: refuse a new turn at once when this worker is past its capacity.

A worker is past its capacity when its event loop runs late (the lag monitor's moving average over
ADMISSION_MAX_LAG_MS) or it holds MAX_STREAMS_PER_WORKER open streams. The turn is then refused
with 503, Retry-After and the warm message before anything is read, verified or reserved, so the
load balancer or the client tries again elsewhere; a turn that is accepted is one the worker can
serve, instead of one that fails half-way because its own loop read the provider too late.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from app.errors import Overloaded

TICK_SECONDS = 0.05
SMOOTHING = 0.2  # weight of the newest tick in the moving average (about the last 0.25 s)


class LagMonitor:
    """One timer per worker: how late the loop runs a callback due every `tick` seconds.

    `lag_seconds()` is an exponentially weighted moving average of that lateness; `observe` is the
    arithmetic, separate from the timer, so it can be tested without one.
    """

    def __init__(self, tick: float = TICK_SECONDS, smoothing: float = SMOOTHING) -> None:
        self._tick, self._smoothing = tick, smoothing
        self._lag = 0.0
        self._task: asyncio.Task[None] | None = None

    def lag_seconds(self) -> float:
        return self._lag

    def observe(self, late: float) -> None:
        self._lag += self._smoothing * (max(late, 0.0) - self._lag)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self._tick
            await asyncio.sleep(self._tick)
            self.observe(loop.time() - due)


class Admission:
    """The capacity check a new turn passes first: `lag` is the reading of the loop's lateness;
    the route counts `open_streams` (streaming) and `starting` (admitted, not yet streaming), so
    a burst that arrives at once is bounded too."""

    def __init__(
        self,
        *,
        lag: Callable[[], float],
        max_lag_seconds: float,
        max_streams: int,
        retry_after: int = 1,
    ) -> None:
        self.lag = lag
        self.open_streams = 0
        self.starting = 0
        self._max_lag, self._max_streams = max_lag_seconds, max_streams
        self._retry_after = retry_after

    def check(self) -> None:
        """Raise `Overloaded` when the worker should not take another turn (0 turns a bound off)."""
        if self._max_lag > 0 and (lag := self.lag()) > self._max_lag:
            raise Overloaded(f"event loop {lag * 1000:.0f} ms late", retry_after=self._retry_after)
        if self._max_streams > 0 and (n := self.open_streams + self.starting) >= self._max_streams:
            raise Overloaded(f"{n} streams open on this worker", retry_after=self._retry_after)
