"""The chat package's settings: the few values the use case decides with, built by `app.main`.

The use case depends on the domain, the ports and the errors only; this value is how the
composition root hands it the knobs from `Settings` without the use case reading all of them.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.core.domain import Caps


@dataclass(frozen=True)
class ChatPolicy:
    # The request to the provider.
    system_prompt: str
    max_tokens: int
    temperature: float
    # Deadlines (seconds): the response head (fallback included), idle between events, total.
    availability_budget: float
    idle_timeout: float
    total_timeout: float
    # What `begin` decides with: the history window, the lease, the default guards.
    history_token_budget: int
    history_max_messages: int
    reservation_ttl_seconds: int
    caps: Caps
    # The final write: retries with backoff before the outbox.
    finish_retries: int
    finish_backoff_seconds: float
    # Resumable turns: the disconnect grace, the checkpoint interval (also the follower's poll),
    # how long a finished turn replays event by event.
    grace_seconds: float
    checkpoint_seconds: float
    retention_seconds: float
