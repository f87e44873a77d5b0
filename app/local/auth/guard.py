"""Who is calling the Auth stand-in: GoTrue's `requireAuthentication` and `requireAdmin`.

As GoTrue 2.195+, a banned user's access token is refused (403 `user_banned`) on every route
that requires authentication, even though it still verifies.

After the gateway, `Authorization` always holds a JWT (the user's, or the API key's role JWT).
Verification failures are 403 `bad_jwt` — not 401: GoTrue answers 401 only when there is no
usable `Bearer` header at all.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection
from starlette.requests import Request

from app.local.auth import store
from app.local.auth.errors import AuthApiError, bad_request, forbidden, unauthorized
from app.local.keys import InvalidToken, LocalKeys

ADMIN_ROLES = frozenset({"service_role", "supabase_admin"})
_BEARER = re.compile(r"^[Bb]earer (\S+)$")  # GoTrue's bearerRegexp
# keys.verify's reasons, in the words golang-jwt (GoTrue's verifier) uses.
_REASONS = {
    "JWT expired": "token has invalid claims: token is expired",
    "JWT not yet valid": "token has invalid claims: token is not valid yet",
    "JWT claims are invalid: missing exp": (
        "token has invalid claims: token is missing required claim: exp claim is required"
    ),
    "No suitable key or wrong key type": (
        "token is unverifiable: error while executing keyfunc: invalid kid"
    ),
    "Wrong or unsupported encoding algorithm": "token is unverifiable: signing method is invalid",
    "JWT cryptographic operation failed": "token signature is invalid",
}


@dataclass(frozen=True)
class SignedInUser:
    """A verified user token with its user row, identities and (optional) session id."""

    claims: dict[str, Any]
    user: store.Row
    identities: list[store.Row]
    session_id: uuid.UUID | None


def bearer_claims(request: Request, keys: LocalKeys) -> dict[str, Any]:
    """The verified claims of the Bearer token; 401 without one, 403 `bad_jwt` if it fails."""
    match = _BEARER.match(request.headers.get("authorization", ""))
    if match is None:
        raise unauthorized("no_authorization", "This endpoint requires a valid Bearer token")
    try:
        return keys.verify(match.group(1), leeway=0, require_exp=False)
    except InvalidToken as exc:
        reason = str(exc)
        if reason.startswith("Expected 3 parts"):
            detail = "token is malformed: token contains an invalid number of segments"
        else:
            detail = _REASONS.get(reason, "token signature is invalid")
        raise forbidden(
            "bad_jwt", f"invalid JWT: unable to parse or verify signature, {detail}"
        ) from exc


async def authenticate(
    request: Request, keys: LocalKeys, conn: AsyncConnection[Any]
) -> SignedInUser:
    """GoTrue's requireAuthentication: a user token whose user and session still exist."""
    claims = bearer_claims(request, keys)
    sub = claims.get("sub")
    if not sub:
        raise forbidden("bad_jwt", "invalid claim: missing sub claim")
    try:
        user_id = uuid.UUID(str(sub))
    except ValueError as exc:
        raise bad_request("bad_jwt", "invalid claim: sub claim must be a UUID") from exc
    session_id, bad_session = _session_claim(claims)
    user, session_alive = await store.find_user_and_session(conn, user_id, session_id)
    if user is None:
        raise forbidden("user_not_found", "User from sub claim in JWT does not exist")
    if bad_session is not None:
        raise bad_session
    if session_id is not None and not session_alive:
        raise forbidden("session_not_found", "Session from session_id claim in JWT does not exist")
    if store.is_banned(user):  # GoTrue >= 2.195: a token issued before the ban stops working
        raise forbidden("user_banned", "User is banned")
    identities = (await store.identities_of(conn, [user_id]))[user_id]
    return SignedInUser(claims=claims, user=user, identities=identities, session_id=session_id)


def _session_claim(claims: dict[str, Any]) -> tuple[uuid.UUID | None, AuthApiError | None]:
    """The `session_id` claim (absent or nil: no session), or the error GoTrue gives for it."""
    raw = claims.get("session_id")
    if not raw or raw == str(uuid.UUID(int=0)):
        return None, None
    try:
        return uuid.UUID(str(raw)), None
    except ValueError:
        return None, forbidden("bad_jwt", "invalid claim: session_id claim must be a UUID")


def check_audience(request: Request, claims: dict[str, Any]) -> None:
    """GET /user: the token's audience must be the request's (`X-JWT-AUD` or the default)."""
    wanted = request.headers.get("x-jwt-aud") or store.AUDIENCE
    aud = claims.get("aud")
    first = aud[0] if isinstance(aud, list) and aud else aud
    if first != wanted:
        raise bad_request("validation_failed", "Token audience doesn't match request audience")


def require_admin(request: Request, keys: LocalKeys) -> dict[str, Any]:
    """GoTrue's requireAdminCredentials: a verified JWT whose `role` is an admin role."""
    claims = bearer_claims(request, keys)
    if claims.get("role") not in ADMIN_ROLES:
        raise AuthApiError(403, "not_admin", "User not allowed")
    return claims
