"""Why a token is refused: `TokenRefused` and its one-word reasons.

Every refusal is a `TokenRefused` (an `AuthError`: 401, the warm sign-in message) whose `detail`
names the reason for the logs and whose `reason` is one word from `REFUSAL_REASONS`, for the
request's log line and the `chat_auth_refusals_total{reason}` metric. Neither reaches the client,
and the token itself is never logged.
"""

from __future__ import annotations

from typing import Literal, get_args

from app.errors import AuthError

RefusalReason = Literal[
    "missing",  # no Authorization header, not Bearer, empty
    "malformed",  # not a JWT, a claim of the wrong type, too long
    "expired",
    "not_yet_valid",  # nbf or iat in the future
    "audience",
    "issuer",
    "signature",
    "unknown_kid",
    "algorithm",  # none, HS256 against asymmetric keys, or one the key does not speak
    "role",  # anon or service_role keys, or no role
    "subject",  # sub not a UUID (or, strict mode, not the user Auth knows)
    "no_keys",  # the JWKS could not be fetched
    "revoked",  # strict mode: Supabase Auth no longer accepts it
]
REFUSAL_REASONS: tuple[RefusalReason, ...] = get_args(RefusalReason)


class TokenRefused(AuthError):
    """A refused token and why, for operators (logs and metrics); clients get `user_message`."""

    def __init__(self, reason: RefusalReason, detail: str, *, status: int | None = None) -> None:
        super().__init__(detail)
        self.reason = reason
        self.auth_status = status  # Supabase Auth's HTTP status, when it was Auth that refused
