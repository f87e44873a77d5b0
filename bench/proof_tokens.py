"""The load proof with access tokens that expire while their answers stream.

Each request's token is minted the moment it is sent and stays valid (`exp` plus the leeway
that the service's verifier and PostgREST both grant) for `lifetime_s` seconds only: valid when
the request arrives, expired while its answer streams. The service's own bookkeeping (lease
renewals, checkpoints, finish) runs with the secret key, so such a turn must keep its lease and
be stored at once: no `abandoned` row for a turn whose worker is alive, no finish left in the
outbox. The live service runs with a short lease (renewed every half lease), so every turn that
outlives its token by half a lease renews after its token died, and the proof sweeps expired
leases every second while the run lasts: a lease that lapsed under a live turn shows at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from app.config import Settings
from bench.world import BenchUser, World

# What the verifier grants past `exp` by default; PostgREST (and its local stand-in) grant 30 s.
POSTGREST_LEEWAY_S = 30
LEEWAY_S: int = max(Settings.model_fields["jwt_leeway_seconds"].default, POSTGREST_LEEWAY_S)
LEASE_S = 4  # the live service's RESERVATION_TTL_SECONDS here: renewed every 2 s
SWEEP_EVERY_S = 1.0


@dataclass
class ExpiringTokens:
    """Mints each request's short-lived token and keeps, per request, when it stopped being
    valid and when its stream ended (both `time.monotonic()`)."""

    world: World
    lifetime_s: int
    good_until: dict[int, float] = field(default_factory=dict)
    ended: dict[int, float] = field(default_factory=dict)
    swept_during_run: int = 0
    sweeps: int = 0

    def mint(self, index: int, user: BenchUser) -> str:
        """A token for `user` whose `exp` plus the leeway falls `lifetime_s` from now."""
        now = time.time()
        issued_at = int(now - LEEWAY_S)
        token = self.world.access_token(user.id, issued_at=issued_at, expires_in=self.lifetime_s)
        valid_until = issued_at + self.lifetime_s + LEEWAY_S  # wall clock: exp + leeway
        self.good_until[index] = time.monotonic() + (valid_until - now)
        return token

    def end(self, index: int) -> None:
        self.ended[index] = time.monotonic()

    def outlived(self, margin_s: float = 0.0) -> int:
        """Streams that ended more than `margin_s` after their token stopped being valid."""
        return sum(
            1
            for index, until in self.good_until.items()
            if index in self.ended and self.ended[index] > until + margin_s
        )

    async def sweep_while(
        self, running: asyncio.Event, sweep: Callable[[], Awaitable[int]]
    ) -> None:
        """`rpc/chat_sweep` every second until `running` is cleared: lapsed leases become
        abandoned rows as soon as they lapse."""
        while running.is_set():
            self.swept_during_run += await sweep()
            self.sweeps += 1
            await asyncio.sleep(SWEEP_EVERY_S)

    def as_json(self) -> dict[str, Any]:
        longest = max(
            (self.ended[i] - u for i, u in self.good_until.items() if i in self.ended),
            default=0.0,
        )
        return {
            "token_lifetime_s": self.lifetime_s,
            "leeway_s": LEEWAY_S,
            "reservation_ttl_s": LEASE_S,
            "tokens_minted": len(self.good_until),
            "turns_outlived_token": self.outlived(),
            "turns_renewed_after_token_expired": self.outlived(LEASE_S / 2),
            "longest_stream_past_token_s": round(max(longest, 0.0), 1),
            "sweeps_during_run": self.sweeps,
            "swept_during_run": self.swept_during_run,
        }
