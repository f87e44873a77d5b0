"""`AuthCalls`: the bound on how often a worker asks Supabase Auth to judge an HS256 token.

In rotation mode without `SUPABASE_JWT_SECRET`, only Auth (`GET /auth/v1/user`) can tell a real
HS256 token from a forged one, and anyone can mint a forged one with plausible claims for free:
unbounded, every forged token is one call to the project's Auth. Three bounds, per worker:

- a token Auth refused is remembered (its SHA-256, until its `exp`, at most `REFUSED_SIZE`) and
  refused again without a call;
- requests carrying the same token at the same time share one call;
- new tokens are confirmed at most `AUTH_CONFIRM_PER_SECOND` a second (a bucket that holds twice
  that); past it the request gets 503 `auth_unavailable` with `Retry-After`, not a 401: a forger's
  flood must not sign a real user out, and the app retries.

Tokens Auth accepts are remembered by the verifier's own cache, so a real user costs one call per
token. The bucket is a few lines rather than a dependency: it refuses instead of waiting, which is
all this needs.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from app.auth.refusal import TokenRefused
from app.errors import AuthUnavailable

REFUSED_SIZE = 4096
_REMEMBER_REFUSED_WITHOUT_EXP = 60.0  # seconds


class AuthCallBudget(AuthUnavailable):
    """This worker asked Auth about too many new HS256 tokens this second: try again shortly."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("auth call budget spent")
        self.retry_after = retry_after


class TokenBucket:
    """`rate` tokens a second, holding at most `capacity`; `take()` never waits."""

    def __init__(self, rate: float, capacity: float, clock: Callable[[], float]) -> None:
        self._rate, self._capacity, self._clock = rate, capacity, clock
        self._tokens, self._at = capacity, clock()

    def take(self) -> bool:
        now = self._clock()
        self._tokens = min(self._capacity, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    def seconds_to_next(self) -> float:
        return max(0.0, (1.0 - self._tokens) / self._rate)


class AuthCalls:
    """`confirm(token, claims)` through `ask`, within the three bounds above."""

    def __init__(
        self,
        ask: Callable[[str, Mapping[str, Any]], Awaitable[None]],
        *,
        per_second: float,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._ask = ask
        self._bucket = TokenBucket(per_second, 2 * per_second, clock)
        self._wall_clock = wall_clock
        self._refused: OrderedDict[bytes, tuple[float, TokenRefused]] = OrderedDict()
        self._inflight: dict[bytes, asyncio.Future[None]] = {}
        self.calls = 0  # made to Auth, for tests and the logs

    async def confirm(self, token: str, claims: Mapping[str, Any]) -> None:
        digest = hashlib.sha256(token.encode()).digest()
        if (refused := self._refused_before(digest)) is not None:
            raise TokenRefused(refused.reason, refused.detail, status=refused.auth_status)
        if (shared := self._inflight.get(digest)) is not None:
            return await asyncio.shield(shared)
        if not self._bucket.take():
            raise AuthCallBudget(max(1, math.ceil(self._bucket.seconds_to_next())))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._inflight[digest] = future
        try:
            self.calls += 1
            await self._ask(token, claims)
        except TokenRefused as exc:
            self._remember_refused(digest, claims, exc)
            _settle(future, exc)
            raise
        except BaseException as exc:
            _settle(future, exc)
            raise
        else:
            future.set_result(None)
        finally:
            del self._inflight[digest]

    def _refused_before(self, digest: bytes) -> TokenRefused | None:
        entry = self._refused.get(digest)
        if entry is None:
            return None
        until, refusal = entry
        if until < self._wall_clock():
            del self._refused[digest]
            return None
        return refusal

    def _remember_refused(
        self, digest: bytes, claims: Mapping[str, Any], refusal: TokenRefused
    ) -> None:
        exp = claims.get("exp")
        now = self._wall_clock()
        until = float(exp) if isinstance(exp, int | float) else now + _REMEMBER_REFUSED_WITHOUT_EXP
        self._refused[digest] = (until, refusal)
        self._refused.move_to_end(digest)
        while len(self._refused) > REFUSED_SIZE:
            self._refused.popitem(last=False)


def _settle(future: asyncio.Future[None], exc: BaseException) -> None:
    """Hand the outcome to requests sharing the call; nobody waiting must not warn."""
    if isinstance(exc, Exception):
        future.set_exception(exc)
        future.exception()  # retrieved: no "exception was never retrieved" if no one shared
    else:
        future.cancel()
