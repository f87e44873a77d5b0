"""SIGHUP: refetch the signing keys at once, for an urgent revocation.

A revoked key leaves the project's JWKS, and its tokens are refused once the JWKS cache
(`JWKS_CACHE_SECONDS`, 600 s like Supabase's own) has expired. To refuse them now, send the
worker SIGHUP (`kill -HUP <pid>`): it forgets every remembered token and fetches the JWKS. With
`serve --workers N`, uvicorn's supervisor answers SIGHUP by restarting the workers, which starts
each with no cache at all. Only the main thread can install it (where signals land).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)


def refetch_on_sighup(refetch: Callable[[], Awaitable[None]]) -> Callable[[], None]:
    """Run `refetch` on each SIGHUP; returns the function that removes the handler."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGHUP"):
        return lambda: None
    loop = asyncio.get_running_loop()
    running: set[asyncio.Task[None]] = set()

    def handle() -> None:
        logger.warning("SIGHUP: refetching the signing keys and forgetting verified tokens")
        task = loop.create_task(_run(refetch))
        running.add(task)
        task.add_done_callback(running.discard)

    def remove() -> None:
        loop.remove_signal_handler(signal.SIGHUP)

    loop.add_signal_handler(signal.SIGHUP, handle)
    return remove


async def _run(refetch: Callable[[], Awaitable[None]]) -> None:
    await refetch()
