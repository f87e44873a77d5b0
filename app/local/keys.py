"""Signing keys and API keys of the local stack, shaped like the Supabase CLI's.

User access tokens are ES256 with a `kid` (published as a JWKS); the `anon` and `service_role`
API keys are long-lived HS256 JWTs over the legacy JWT secret, as `supabase start` issues them.
Keys are generated once and kept in LOCAL_STACK_DIR, so tokens survive a restart.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

ANON_ROLE = "anon"
SERVICE_ROLE = "service_role"
AUTHENTICATED_ROLE = "authenticated"
API_KEY_EXPIRY = 1983812996  # the Supabase CLI's fixed expiry for local API keys
ISSUER_FOR_API_KEYS = "supabase-demo"


class InvalidToken(ValueError):
    """A JWT that does not verify; `.reason` is PostgREST/GoTrue-style text."""


@dataclass(frozen=True)
class LocalKeys:
    kid: str
    private_jwk: dict[str, Any]
    jwt_secret: str

    # --- construction -------------------------------------------------------------------------
    @classmethod
    def generate(cls) -> LocalKeys:
        private = ec.generate_private_key(ec.SECP256R1())
        jwk = json.loads(ECAlgorithm.to_jwk(private))
        kid = str(uuid.uuid4())
        jwk |= {"kid": kid, "alg": "ES256", "use": "sig", "key_ops": ["sign"]}
        return cls(kid=kid, private_jwk=jwk, jwt_secret=secrets.token_urlsafe(48))

    @classmethod
    def load_or_create(cls, directory: Path) -> LocalKeys:
        path = Path(directory) / "keys.json"
        if path.exists():
            data = json.loads(path.read_text())
            return cls(
                kid=data["kid"], private_jwk=data["private_jwk"], jwt_secret=data["jwt_secret"]
            )
        keys = cls.generate()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(
                {"kid": keys.kid, "private_jwk": keys.private_jwk, "jwt_secret": keys.jwt_secret}, f
            )
        return keys

    # --- keys ---------------------------------------------------------------------------------
    @property
    def _private_key(self) -> ec.EllipticCurvePrivateKey:
        key = ECAlgorithm.from_jwk(json.dumps(self.private_jwk))
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return key

    def public_jwk(self) -> dict[str, Any]:
        public: dict[str, Any] = json.loads(ECAlgorithm.to_jwk(self._private_key.public_key()))
        return public | {"kid": self.kid, "alg": "ES256", "use": "sig", "key_ops": ["verify"]}

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.public_jwk()]}

    @property
    def attestation_key(self) -> bytes:
        """The local stack's billing attestation key, derived from its JWT secret (stable)."""
        return (
            hashlib.sha256(b"chat-stream attestation\n" + self.jwt_secret.encode())
            .hexdigest()
            .encode()
        )

    # --- minting ------------------------------------------------------------------------------
    def api_key(self, role: str) -> str:
        """The legacy JWT API key for `anon` or `service_role` (HS256, no kid)."""
        claims = {"iss": ISSUER_FOR_API_KEYS, "role": role, "exp": API_KEY_EXPIRY}
        return jwt.encode(claims, self.jwt_secret, algorithm="HS256")

    @property
    def anon_key(self) -> str:
        return self.api_key(ANON_ROLE)

    @property
    def service_role_key(self) -> str:
        return self.api_key(SERVICE_ROLE)

    def sign_access_token(self, claims: dict[str, Any]) -> str:
        return jwt.encode(
            claims, self._private_key, algorithm="ES256", headers={"kid": self.kid, "typ": "JWT"}
        )

    def user_access_token(
        self,
        *,
        user_id: str,
        issuer: str,
        email: str = "",
        session_id: str | None = None,
        expires_in: int = 3600,
        app_metadata: dict[str, Any] | None = None,
        user_metadata: dict[str, Any] | None = None,
        now: int | None = None,
    ) -> str:
        """An access token with the claims Supabase Auth puts in one (wire reference §3.4)."""
        iat = int(now if now is not None else time.time())
        claims = {
            "iss": issuer,
            "sub": user_id,
            "aud": AUTHENTICATED_ROLE,
            "exp": iat + expires_in,
            "iat": iat,
            "email": email,
            "phone": "",
            "app_metadata": app_metadata or {"provider": "email", "providers": ["email"]},
            "user_metadata": user_metadata or {},
            "role": AUTHENTICATED_ROLE,
            "aal": "aal1",
            "amr": [{"method": "password", "timestamp": iat}],
            "session_id": session_id or str(uuid.uuid4()),
            "is_anonymous": False,
        }
        return self.sign_access_token(claims)

    # --- verification (the gateway's and PostgREST's view) ------------------------------------
    def verify(self, token: str, *, leeway: int = 30) -> dict[str, Any]:
        """Verify a user token (ES256 by kid) or an API key (HS256 secret); return its claims.

        Mirrors PostgREST: `exp`/`nbf`/`iat` with 30 s of skew, `aud` not checked.
        """
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError as exc:
            raise InvalidToken(f"Expected 3 parts in JWT; got {token.count('.') + 1}") from exc
        alg = header.get("alg")
        options = {"verify_aud": False, "require": ["exp"]}
        try:
            if alg == "ES256":
                if header.get("kid") not in (None, self.kid):
                    raise InvalidToken("No suitable key or wrong key type")
                return jwt.decode(
                    token,
                    self._private_key.public_key(),
                    algorithms=["ES256"],
                    leeway=leeway,
                    options=options,  # type: ignore[arg-type]
                )
            if alg == "HS256":
                return jwt.decode(
                    token,
                    self.jwt_secret,
                    algorithms=["HS256"],
                    leeway=leeway,
                    options=options,  # type: ignore[arg-type]
                )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidToken("JWT expired") from exc
        except jwt.ImmatureSignatureError as exc:
            raise InvalidToken("JWT not yet valid") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidToken("JWT claims are invalid: missing exp") from exc
        except jwt.InvalidTokenError as exc:
            raise InvalidToken("JWT cryptographic operation failed") from exc
        raise InvalidToken("Wrong or unsupported encoding algorithm")
