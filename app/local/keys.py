"""Signing keys and API keys of the local stack, shaped like the Supabase CLI's.

API keys: the opaque `sb_publishable_…` and `sb_secret_…` keys (the CLI's fixed local values
unless `[auth] publishable_key`/`secret_key` say otherwise), which the gateway turns into the
`anon` and `service_role` JWTs; and those legacy JWT keys themselves (deprecated, still served).

Signing keys: without `[auth] signing_keys_path`, one ES256 key per stack directory, generated
once and kept in LOCAL_STACK_DIR with the legacy JWT secret, so tokens survive a restart; the
legacy keys are HS256 over that secret. With the file (`signing_keys`), its signing key signs
user tokens *and* the legacy keys (10-year expiry), every key in it verifies, and the Data API no
longer accepts tokens signed with the legacy secret: it has left the JWKS, as with the CLI.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
import uuid
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import jwt

from app.local import signing_keys

ANON_ROLE = "anon"
SERVICE_ROLE = "service_role"
AUTHENTICATED_ROLE = "authenticated"
API_KEY_EXPIRY = 1983812996  # the Supabase CLI's fixed expiry for local API keys
ISSUER_FOR_API_KEYS = "supabase-demo"
ASYMMETRIC_API_KEY_LIFETIME = 10 * 365 * 24 * 3600  # the CLI's, when a signing-keys file is set
# The Supabase CLI's fixed local API keys (`pkg/config/apikeys.go`): public test values.
DEFAULT_PUBLISHABLE_KEY = "sb_publishable_ACJWlzQHlZjBrEguHvfOxg_3BJgxAaH"
DEFAULT_SECRET_KEY = "sb_secret_N7UND0UgjKTVK-Uodkm0Hg_xSvEMPvz"


class InvalidToken(ValueError):
    """A JWT that does not verify; `.reason` is PostgREST/GoTrue-style text."""


@dataclass(frozen=True)
class LocalKeys:
    kid: str  # of the key that signs
    private_jwk: dict[str, Any]
    jwt_secret: str
    # Every other key of the signing-keys file (standby, previously used): they verify only.
    verify_jwks: tuple[dict[str, Any], ...] = ()
    publishable_key: str = DEFAULT_PUBLISHABLE_KEY
    secret_key: str = DEFAULT_SECRET_KEY
    from_file: bool = False  # `[auth] signing_keys_path` is set
    issued_at: int = field(default_factory=lambda: int(time.time()))

    # --- construction -------------------------------------------------------------------------
    @classmethod
    def generate(cls) -> LocalKeys:
        jwk = signing_keys.generate("ES256") | {"key_ops": ["sign"]}
        jwk.pop("ext")
        return cls(kid=jwk["kid"], private_jwk=jwk, jwt_secret=secrets.token_urlsafe(48))

    def with_api_keys(self, publishable_key: str | None, secret_key: str | None) -> LocalKeys:
        """These keys with other `sb_` API keys (None keeps the CLI's default)."""
        return LocalKeys(
            self.kid,
            self.private_jwk,
            self.jwt_secret,
            self.verify_jwks,
            publishable_key or DEFAULT_PUBLISHABLE_KEY,
            secret_key or DEFAULT_SECRET_KEY,
            self.from_file,
        )

    def with_signing_keys(self, path: Path) -> LocalKeys:
        """These keys with the signing keys of `path` (the legacy secret stays, for GoTrue)."""
        keys = signing_keys.read_keys(path)
        signer = keys[signing_keys.signing_index(keys)]
        others = tuple(signing_keys.public_jwk(k) for k in keys if k is not signer)
        return LocalKeys(
            str(signer.get("kid", "")),
            signer,
            self.jwt_secret,
            others,
            self.publishable_key,
            self.secret_key,
            from_file=True,
        )

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
    def algorithm(self) -> signing_keys.Algorithm:
        return signing_keys.algorithm_of(self.private_jwk)

    @cached_property
    def _private_key(self) -> signing_keys.PrivateKey:
        return signing_keys.private_key(self.private_jwk)

    @cached_property
    def _verifiers(self) -> dict[str | None, tuple[str, signing_keys.PublicKey]]:
        """kid -> (alg, public key) for every key that verifies; None for a kid-less token."""
        out: dict[str | None, tuple[str, signing_keys.PublicKey]] = {
            None: (self.algorithm, self._private_key.public_key()),
            self.kid: (self.algorithm, self._private_key.public_key()),
        }
        for jwk in self.verify_jwks:
            out[jwk.get("kid")] = (signing_keys.algorithm_of(jwk), signing_keys.public_key(jwk))
        return out

    def public_jwk(self) -> dict[str, Any]:
        return signing_keys.public_jwk(self.private_jwk) | {"kid": self.kid}

    def jwks(self) -> dict[str, Any]:
        """The signing key first, then every verify-only key of the file (public parts)."""
        return {"keys": [self.public_jwk(), *self.verify_jwks]}

    @property
    def secret_in_jwks(self) -> bool:
        """Whether the Data API still verifies with the legacy JWT secret (no signing-keys file:
        the CLI puts it in PostgREST's JWKS as an `oct` key; with the file it leaves)."""
        return not self.from_file

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
        """The legacy JWT API key for `anon` or `service_role`: HS256 over the JWT secret, no
        kid; with a signing-keys file, signed by its signing key, valid 10 years (the CLI's)."""
        if self.from_file:
            exp = self.issued_at + ASYMMETRIC_API_KEY_LIFETIME
            return self.sign_access_token({"iss": ISSUER_FOR_API_KEYS, "role": role, "exp": exp})
        claims = {"iss": ISSUER_FOR_API_KEYS, "role": role, "exp": API_KEY_EXPIRY}
        return jwt.encode(claims, self.jwt_secret, algorithm="HS256")

    @cached_property
    def anon_key(self) -> str:
        return self.api_key(ANON_ROLE)

    @cached_property
    def service_role_key(self) -> str:
        return self.api_key(SERVICE_ROLE)

    def sign_access_token(self, claims: dict[str, Any]) -> str:
        headers = {"kid": self.kid, "typ": "JWT"} if self.kid else {"typ": "JWT"}
        return jwt.encode(claims, self._private_key, algorithm=self.algorithm, headers=headers)

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
        is_anonymous: bool = False,
        amr_method: str = "password",
        aal: str = "aal1",
        amr: list[dict[str, Any]] | None = None,
    ) -> str:
        """An access token with the claims Supabase Auth puts in one; `amr` (a session's
        recorded methods) replaces the single `amr_method` entry."""
        iat = int(now if now is not None else time.time())
        claims = {
            "iss": issuer,
            "sub": user_id,
            "aud": AUTHENTICATED_ROLE,
            "exp": iat + expires_in,
            "iat": iat,
            "email": email,
            "phone": "",
            "app_metadata": (
                app_metadata
                if app_metadata is not None
                else {"provider": "email", "providers": ["email"]}
            ),
            "user_metadata": user_metadata or {},
            "role": AUTHENTICATED_ROLE,
            "aal": aal,
            "amr": amr if amr is not None else [{"method": amr_method, "timestamp": iat}],
            "session_id": session_id or str(uuid.uuid4()),
            "is_anonymous": is_anonymous,
        }
        return self.sign_access_token(claims)

    # --- verification (the gateway's and PostgREST's view) ------------------------------------
    def verify(
        self,
        token: str,
        *,
        leeway: int = 30,
        require_exp: bool = True,
        accept_secret: bool = True,
    ) -> dict[str, Any]:
        """Verify a user token (ES256/RS256 by kid, any key of the set) or an HS256 token over
        the legacy secret (`accept_secret`); return its claims.

        Mirrors PostgREST: `exp`/`nbf`/`iat` with 30 s of skew, `aud` not checked. GoTrue's
        parser does not require `exp` (golang-jwt without `WithExpirationRequired`): the Auth
        stand-in passes `require_exp=False`. GoTrue always keeps the secret for HS256; the Data
        API passes `accept_secret=self.secret_in_jwks`.
        """
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError as exc:
            raise InvalidToken(f"Expected 3 parts in JWT; got {token.count('.') + 1}") from exc
        alg = header.get("alg")
        options = {"verify_aud": False, "require": ["exp"] if require_exp else []}
        try:
            if alg in ("ES256", "RS256"):
                found = self._verifiers.get(header.get("kid"))
                if found is None or found[0] != alg:
                    raise InvalidToken("No suitable key or wrong key type")
                return jwt.decode(
                    token,
                    found[1],
                    algorithms=[alg],
                    leeway=leeway,
                    options=options,  # type: ignore[arg-type]
                )
            if alg == "HS256":
                if not accept_secret:
                    raise InvalidToken("No suitable key or wrong key type")
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
