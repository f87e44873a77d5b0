"""Requests not yet authenticated: bounded on their own, so they hold nothing real users need.

A request is pending from its arrival until its body is read and its token verified. Pending
requests take no turn slot (admission counts turns only once they are someone's); they are bounded
per worker (503 `overloaded` above, as any capacity refusal) and per client address (429 above:
that one client is holding too many), and each is cut at BODY_TIMEOUT_SECONDS by the body reader.
The address is the connection's peer, or X-Forwarded-For's first hop when uvicorn's
FORWARDED_ALLOW_IPS trusts the proxy (README, "Behind a proxy").
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from app.errors import Overloaded, RateLimited


class PendingRequests:
    def __init__(self, *, per_worker: int, per_client: int) -> None:
        self._per_worker, self._per_client = per_worker, per_client
        self._by_client: Counter[str] = Counter()
        self.total = 0

    @contextmanager
    def hold(self, client: str) -> Iterator[None]:
        """One pending request from `client` until the block ends; refused past a bound."""
        if self._per_worker > 0 and self.total >= self._per_worker:
            raise Overloaded(f"{self.total} unauthenticated requests pending on this worker")
        if self._per_client > 0 and self._by_client[client] >= self._per_client:
            raise RateLimited(f"{self._by_client[client]} requests pending from {client}")
        self.total += 1
        self._by_client[client] += 1
        try:
            yield
        finally:
            self.total -= 1
            self._by_client[client] -= 1
            if not self._by_client[client]:
                del self._by_client[client]
