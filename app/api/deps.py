"""What a request needs, built once in the lifespan (the composition root is app.main)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from starlette.responses import JSONResponse

from app.api.admission import Admission, LagMonitor
from app.api.drain import Drain
from app.api.followers import Followers
from app.api.pending import PendingRequests
from app.chat.feed import FeedRegistry
from app.chat.resume import Resumer
from app.chat.service import ChatService
from app.config import Settings
from app.core.domain import Caller
from app.core.ports import ChatStore
from app.ops.metrics import ChatMetrics
from app.store.outbox import Outbox


class Verifier(Protocol):
    async def verify(self, authorization: str | None) -> Caller: ...


class Store(ChatStore, Protocol):
    async def ping(self) -> None: ...


@dataclass
class Services:
    settings: Settings
    verifier: Verifier
    chat: ChatService
    outbox: Outbox
    store: Store
    metrics: ChatMetrics
    feeds: FeedRegistry
    resumer: Resumer
    drain: Drain
    admission: Admission = field(
        default_factory=lambda: Admission(lag=lambda: 0.0, max_lag_seconds=0, max_streams=0)
    )
    lag_monitor: LagMonitor = field(default_factory=LagMonitor)
    followers: Followers = field(default_factory=lambda: Followers(per_turn=0, per_user=0))
    pending: PendingRequests = field(
        default_factory=lambda: PendingRequests(per_worker=0, per_client=0)
    )
    provider_problems: Callable[[], list[str]] = field(default=lambda: [])
    readiness: tuple[float, JSONResponse] | None = None
