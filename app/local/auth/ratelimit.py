"""GoTrue's request rate limits (`[auth.rate_limit]`), as token buckets kept in memory.

GoTrue uses tollbooth buckets: a refill rate of N per window and a burst of 30 (or N when N is
smaller; the anonymous bucket's burst is N). A refused request is 429 `over_request_rate_limit`
"Request rate limit reached"; the project-wide email budget is 429 `over_email_send_rate_limit`
"Email rate limit exceeded". GoTrue keys a per-address bucket on the first value of the header
`GOTRUE_RATE_LIMIT_HEADER` names, and applies none when it names none (the CLI's stack) or the
request lacks it; so does the stand-in (`[auth.rate_limit] header`). The email budget is
project-wide and always applies.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from starlette.requests import Request

from app.local.auth.config import RateLimits
from app.local.auth.errors import AuthApiError

FIVE_MINUTES = 300.0
HOUR = 3600.0
TOLLBOOTH_BURST = 30
_MAX_KEYS = 10_000  # forget the oldest buckets past this many client addresses


class Bucket(enum.Enum):
    SIGN_IN_SIGN_UPS = "sign_in_sign_ups"  # /signup, /otp, /magiclink, /recover, /resend, PUT /user
    TOKEN = "token_refresh"  # every /token grant
    VERIFY = "token_verifications"  # /verify
    ANONYMOUS = "anonymous_users"  # POST /signup without credentials
    EMAIL = "email_sent"  # every mail, project-wide


@dataclass
class _State:
    tokens: float
    stamp: float


@dataclass(frozen=True)
class _Rule:
    per_second: float
    burst: float


def _rules(limits: RateLimits) -> dict[Bucket, _Rule]:
    def per_5m(n: int) -> _Rule:
        return _Rule(n / FIVE_MINUTES, float(min(n, TOLLBOOTH_BURST)))

    return {
        Bucket.SIGN_IN_SIGN_UPS: per_5m(limits.sign_in_sign_ups),
        Bucket.TOKEN: per_5m(limits.token_refresh),
        Bucket.VERIFY: per_5m(limits.token_verifications),
        Bucket.ANONYMOUS: _Rule(limits.anonymous_users / HOUR, float(limits.anonymous_users)),
        Bucket.EMAIL: _Rule(limits.email_sent / HOUR, float(limits.email_sent)),
    }


class RateLimiter:
    """Per-(bucket, key) token buckets. Thread-safe; `clock` is injectable for tests."""

    def __init__(self, limits: RateLimits, clock: Callable[[], float] = time.monotonic) -> None:
        self.enabled = limits.enabled
        self._header = limits.header
        self._rules = _rules(limits)
        self._clock = clock
        self._state: dict[tuple[Bucket, str], _State] = {}
        self._lock = threading.Lock()

    def allow(self, bucket: Bucket, key: str) -> bool:
        """Take one token from the bucket of `key`; False when it is empty."""
        if not self.enabled:
            return True
        rule = self._rules[bucket]
        now = self._clock()
        with self._lock:
            state = self._state.get((bucket, key))
            if state is None:
                if len(self._state) >= _MAX_KEYS:
                    self._state.pop(next(iter(self._state)))
                state = self._state[(bucket, key)] = _State(rule.burst, now)
            state.tokens = min(rule.burst, state.tokens + (now - state.stamp) * rule.per_second)
            state.stamp = now
            if state.tokens < 1.0:
                return False
            state.tokens -= 1.0
            return True

    def check(self, request: Request, bucket: Bucket) -> None:
        """Raise GoTrue's 429 when the caller's bucket is empty."""
        key = client_key(request, self._header)
        if key is not None and not self.allow(bucket, key):
            raise AuthApiError(429, "over_request_rate_limit", "Request rate limit reached")

    def check_email(self) -> None:
        """The project-wide email budget (`email_sent` per hour)."""
        if not self.allow(Bucket.EMAIL, "*"):
            raise AuthApiError(429, "over_email_send_rate_limit", "Email rate limit exceeded")


def client_key(request: Request, header: str) -> str | None:
    """The first address of `header` (`X-Forwarded-For: a, b` -> `a`); None: not limited."""
    if not header:
        return None
    value = request.headers.get(header, "").split(",", 1)[0].strip()
    return value or None
