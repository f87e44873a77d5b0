"""Asking Supabase Auth itself: `GET /auth/v1/user`, through supabase-auth's `get_user`.

The signature, the session and the user must still be valid there, so a sign-out or a deleted
user is refused at once. Auth answering 400/401/403 (or anything but 200) → 401. Auth unreachable,
5xx or 429 → `AuthUnavailable` (503, code `auth_unavailable`): we cannot tell whether the token is
good, so we fail closed, but not with "sign in again", which would not help while Auth is down
and would make the app drop a session that may be perfectly valid. The call is bounded by
`DB_TIMEOUT_SECONDS`, like every Supabase API call.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import anyio
import httpx
from supabase_auth import AsyncGoTrueClient
from supabase_auth.errors import AuthApiError, AuthRetryableError, AuthUnknownError
from supabase_auth.errors import AuthError as GoTrueError

from app.auth.refusal import TokenRefused
from app.errors import AuthUnavailable

logger = logging.getLogger(__name__)


class AuthServer:
    """`GET /auth/v1/user` for one token: it must still be accepted and name the token's `sub`."""

    def __init__(
        self,
        auth_url: str,
        http: httpx.AsyncClient,
        *,
        headers: Mapping[str, str],
        timeout_seconds: float,
    ) -> None:
        self._timeout_seconds = timeout_seconds
        # supabase-auth's client, for `get_user(jwt)` only: no session, nothing stored, the shared
        # pool; so one instance serves every request.
        self._gotrue = AsyncGoTrueClient(
            url=auth_url,
            headers=dict(headers),
            http_client=http,
            auto_refresh_token=False,
            persist_session=False,
        )

    async def confirm(self, token: str, claims: Mapping[str, Any]) -> None:
        """Supabase Auth must still accept the token and name its user."""
        try:
            with anyio.fail_after(self._timeout_seconds):
                answer = await self._gotrue.get_user(token)
        except TimeoutError as exc:
            logger.warning("Supabase Auth did not answer GET /user in %ss", self._timeout_seconds)
            raise AuthUnavailable("auth server timed out") from exc
        except GoTrueError as exc:
            status = _status_of(exc)
            if status is None or status == 429 or status >= 500:
                logger.warning("Supabase Auth unavailable for GET /user: %r", exc)
                raise AuthUnavailable(f"auth server answered {status}") from exc
            raise TokenRefused(
                "revoked", f"auth server refused the token ({status})", status=status
            ) from exc
        except ValueError as exc:  # a 200 whose body is not a user (pydantic's ValidationError)
            raise AuthUnavailable("auth server sent invalid JSON") from exc
        if answer is None or answer.user.id != claims["sub"]:
            raise TokenRefused("subject", "auth server user does not match the token's sub")


def _status_of(exc: GoTrueError) -> int | None:
    """The HTTP status behind a supabase-auth error; None when Auth was not reached."""
    if isinstance(exc, AuthRetryableError):  # unreachable (status 0), 502-504 and 52x
        return exc.status or None
    if isinstance(exc, AuthApiError):  # any other error answer with a JSON body
        return exc.status
    if isinstance(exc, AuthUnknownError):  # an error answer whose body is not JSON
        cause = exc.__cause__
        if isinstance(cause, httpx.HTTPStatusError):
            return cause.response.status_code
    return None
