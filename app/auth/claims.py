"""The claims every accepted token must carry, checked with PyJWT.

`exp`, `nbf` and `iat` (with the leeway), `aud` equal to the audience, `iss` equal to the issuer
when one is set, `role == "authenticated"` (refusing the anon and service_role API keys) and
`sub` a canonical UUID. Each PyJWT failure becomes a `TokenRefused` with its reason.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import jwt

from app.auth.refusal import RefusalReason, TokenRefused

AUTHENTICATED_ROLE = "authenticated"
_REQUIRED_CLAIMS = ["exp", "sub", "aud", "role"]
_MISSING_CLAIM_REASONS: dict[str, RefusalReason] = {
    "aud": "audience",
    "role": "role",
    "sub": "subject",
}


@dataclass(frozen=True)
class ClaimRules:
    audience: str
    issuer: str | None
    leeway: float

    def decode(
        self, token: str, key: jwt.PyJWK | bytes | None, algorithms: list[str]
    ) -> dict[str, Any]:
        """Signature (unless `key` is None: strict mode), time claims, aud, iss, role, sub."""
        options: dict[str, Any] = {"require": _REQUIRED_CLAIMS}
        if key is None:
            options |= {
                "verify_signature": False,
                "verify_exp": True,
                "verify_nbf": True,
                "verify_iat": True,
                "verify_aud": True,
                "verify_iss": True,
            }
        try:
            claims = jwt.decode(
                token,
                key if key is not None else "",
                algorithms=algorithms,
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options=options,  # type: ignore[arg-type]
            )
        except jwt.ExpiredSignatureError as exc:
            raise TokenRefused("expired", "token expired") from exc
        except jwt.ImmatureSignatureError as exc:
            raise TokenRefused("not_yet_valid", f"token not yet valid: {exc}") from exc
        except jwt.InvalidAudienceError as exc:
            raise TokenRefused("audience", f"wrong audience: {exc}") from exc
        except jwt.InvalidIssuerError as exc:
            raise TokenRefused("issuer", f"wrong issuer: {exc}") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise TokenRefused(
                _MISSING_CLAIM_REASONS.get(exc.claim, "malformed"), f"missing claim {exc.claim!r}"
            ) from exc
        except jwt.exceptions.InvalidSubjectError as exc:
            raise TokenRefused("subject", "sub is not a UUID") from exc
        except jwt.InvalidSignatureError as exc:
            raise TokenRefused("signature", "bad signature") from exc
        except jwt.InvalidAlgorithmError as exc:
            raise TokenRefused("algorithm", f"algorithm not allowed: {exc}") from exc
        except jwt.InvalidTokenError as exc:
            raise TokenRefused("malformed", f"invalid token: {exc}") from exc
        role = claims.get("role")
        if role != AUTHENTICATED_ROLE:
            raise TokenRefused("role", f"role {role!r} is not {AUTHENTICATED_ROLE!r}")
        claims["sub"] = _canonical_uuid(claims.get("sub"))
        return claims


def _canonical_uuid(sub: object) -> str:
    """`sub` as a canonical lower-case UUID; anything else (braces, urn:, no dashes) is refused."""
    if not isinstance(sub, str):
        raise TokenRefused("subject", "sub is not a UUID")
    try:
        canonical = str(uuid.UUID(sub))
    except ValueError as exc:
        raise TokenRefused("subject", "sub is not a UUID") from exc
    if canonical != sub.lower():
        raise TokenRefused("subject", "sub is not a UUID")
    return canonical
