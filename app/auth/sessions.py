"""Sign-outs and bans within a minute, with no round trip on the hot path.

A token verified locally stays valid until its `exp` (up to an hour), however the user signed out
or an admin banned them. So in every mode but `strict`, the token's session (GoTrue tokens carry
`session_id`; a token without one is keyed by its user) is confirmed with Supabase Auth
(`GET /auth/v1/user`, which refuses an ended session with 403 `session_not_found` and, since
GoTrue 2.195, a banned user with 403 `user_banned`) at most once per `SESSION_CHECK_SECONDS`
(default 60); the answer, either way, is remembered that long. Auth unreachable: the locally
verified token is served and Auth is asked again on the next request (a sign-out is then late,
not every turn refused). Hosted Supabase's own Data API does no such check.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from app.auth.refusal import TokenRefused
from app.errors import AuthUnavailable, StoreError

logger = logging.getLogger(__name__)

SESSIONS_REMEMBERED = 50_000
# What GoTrue answers a token it no longer accepts (bad_jwt, session_not_found, user_banned,
# user_not_found); None: Auth named another user than the token's `sub`.
_REFUSALS = {None, 400, 401, 403}


class Confirms(Protocol):
    async def confirm(self, token: str, claims: Mapping[str, Any]) -> None: ...


class SessionCheck:
    """One Auth call per session per `seconds`; refusals are remembered as long as answers."""

    def __init__(
        self,
        auth: Confirms,
        seconds: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        size: int = SESSIONS_REMEMBERED,
    ) -> None:
        self._auth, self._seconds, self._clock, self._size = auth, seconds, clock, size
        self._wall_clock = wall_clock
        self._answers: OrderedDict[str, tuple[float, TokenRefused | None]] = OrderedDict()

    async def ensure(self, token: str, claims: Mapping[str, Any]) -> None:
        """Return if the session is alive (as of at most `seconds` ago); raise `TokenRefused`."""
        if self._seconds <= 0:
            return
        exp = claims.get("exp")
        if isinstance(exp, int | float) and exp <= self._wall_clock():
            # Past `exp`, within the verifier's leeway: Auth would only say "expired". Served as
            # verified for those few seconds, as it was before this check.
            return
        key = str(claims.get("session_id") or f"user:{claims.get('sub')}")
        now = self._clock()
        answer = self._answers.get(key)
        if answer is not None and now < answer[0]:
            if answer[1] is not None:
                raise answer[1]
            return
        refused: TokenRefused | None = None
        try:
            await self._auth.confirm(token, claims)
        except TokenRefused as exc:
            if exc.auth_status not in _REFUSALS:  # not GoTrue's word on this session: keep serving
                logger.warning("session check skipped, Supabase Auth answered %s", exc.auth_status)
                return
            refused = exc
        except (AuthUnavailable, StoreError) as exc:
            logger.warning("session check skipped, Supabase Auth unavailable: %s", exc.detail)
            return
        self._answers[key] = (now + self._seconds, refused)
        self._answers.move_to_end(key)
        while len(self._answers) > self._size:
            self._answers.popitem(last=False)
        if refused is not None:
            raise refused
