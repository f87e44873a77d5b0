"""`Authorization: Bearer <token>` → the token, refusing what is not one before any parsing."""

from __future__ import annotations

from app.auth.refusal import TokenRefused

_MAX_TOKEN_CHARS = 16_384  # Supabase tokens are ~1 KB; refuse megabyte headers before parsing


def bearer_token(authorization_header: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header (scheme case-insensitive)."""
    if not authorization_header:
        raise TokenRefused("missing", "no Authorization header")
    scheme, _, token = authorization_header.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise TokenRefused("missing", "Authorization scheme is not Bearer")
    token = token.strip()
    if not token:
        raise TokenRefused("missing", "empty Bearer token")
    if len(token) > _MAX_TOKEN_CHARS:
        raise TokenRefused("malformed", "token too long")
    return token
