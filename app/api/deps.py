"""What a request needs, built once in the lifespan (the composition root is app.main)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from app.chat import ChatService
from app.config import Settings
from app.domain import Caller
from app.outbox import Outbox


class Verifier(Protocol):
    async def verify(self, authorization: str | None) -> Caller: ...


class Pingable(Protocol):
    async def ping(self) -> None: ...


@dataclass
class Services:
    settings: Settings
    verifier: Verifier
    chat: ChatService
    outbox: Outbox
    store: Pingable
