"""`TokenVerifier`: `Authorization: Bearer <Supabase access token>` → `Caller`.

One `TokenVerifier` is built in the app's lifespan with the `Settings` and the shared
`httpx.AsyncClient`; `verify()` is then called once per request. Modes (`AUTH_MODE`):

- `jwks` (default): verify locally against the project's public keys from
  `{SUPABASE_URL}/auth/v1/.well-known/jwks.json` (`app.auth.jwks`).
- `hs256`: verify with the legacy shared secret `SUPABASE_JWT_SECRET` (HS256 only).
- `strict` (needs `SUPABASE_ANON_KEY`): check the claims locally (everything but the
  signature), then ask Supabase Auth (`app.auth.auth_server`) every time, uncached.

In every mode the algorithm list is pinned to the key material: JWKS keys verify only their own
asymmetric algorithm (an HS256 token is refused before any key lookup, so a public key is never an
HMAC secret), the secret verifies only HS256, and `alg: none` is never accepted. The claims are
then checked by `app.auth.claims`. Verified tokens are remembered (`app.auth.cache`) until their
`exp`; in `jwks` mode a hit still looks its key up, and counts only while that is the very key it
was verified with. Refusals are `TokenRefused` (`app.auth.refusal`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt

from app.auth.auth_server import AuthServer
from app.auth.bearer import bearer_token
from app.auth.cache import VERIFIED_CACHE_SIZE, VerifiedToken, VerifiedTokens
from app.auth.claims import ClaimRules
from app.auth.jwks import ASYMMETRIC_ALGORITHMS, JwksCache
from app.auth.refusal import TokenRefused
from app.config import Settings
from app.core.domain import Caller

_MIN_HMAC_SECRET_BYTES = 32  # Supabase's own minimum; shorter makes PyJWT warn on every call


class TokenVerifier:
    """Turns an Authorization header into a verified `Caller`, or raises `AuthError`."""

    def __init__(
        self,
        settings: Settings,
        http: httpx.AsyncClient,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        cache_size: int = VERIFIED_CACHE_SIZE,
    ) -> None:
        self._mode = settings.auth_mode
        self._wall_clock = wall_clock
        self.verified = VerifiedTokens(cache_size)
        self._rules = ClaimRules(
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer or None,
            leeway=settings.jwt_leeway_seconds,
        )
        anon_key = settings.supabase_anon_key.get_secret_value()
        apikey_headers = {"apikey": anon_key} if anon_key else {}
        base = settings.supabase_url.rstrip("/")
        timeout = httpx.Timeout(settings.db_timeout_seconds)
        self._auth_server = AuthServer(
            f"{base}/auth/v1",
            http,
            headers=apikey_headers,
            timeout_seconds=settings.db_timeout_seconds,
        )
        self._secret = b""
        self._jwks: JwksCache | None = None
        if self._mode in ("jwks", "strict") and not base:
            raise ValueError(f"SUPABASE_URL is required for AUTH_MODE={self._mode}")
        if self._mode == "strict" and not anon_key:
            raise ValueError("SUPABASE_ANON_KEY is required for AUTH_MODE=strict (Auth wants it)")
        if self._mode == "jwks":
            self._jwks = JwksCache(
                f"{base}/auth/v1/.well-known/jwks.json",
                http,
                headers=apikey_headers,
                cache_seconds=settings.jwks_cache_seconds,
                min_refresh_seconds=settings.jwks_min_refresh_seconds,
                timeout=timeout,
                clock=clock,
            )
        elif self._mode == "hs256":
            self._secret = settings.supabase_jwt_secret.get_secret_value().encode()
            if len(self._secret) < _MIN_HMAC_SECRET_BYTES:
                raise ValueError(
                    "AUTH_MODE=hs256 needs SUPABASE_JWT_SECRET of at least "
                    f"{_MIN_HMAC_SECRET_BYTES} bytes"
                )

    async def warm(self) -> bool:
        """Fetch the JWKS ahead of the first request (lifespan): True once the keys are held.

        Failures are only logged, and a failed warm-up does not start the quiet period, so the
        caller may try again (`app.main` retries with backoff until Auth answers: in the local
        stack the service is mounted on Auth's own server, which is not listening yet during the
        lifespan) and the first request is free to fetch. Modes without a JWKS: True.
        """
        if self._jwks is None:
            return True
        await self._jwks.refresh(prefetch=True)
        return self._jwks.holds_keys

    async def verify(self, authorization_header: str | None) -> Caller:
        token = bearer_token(authorization_header)
        if self._mode != "strict" and (hit := self.verified.get(token, self._wall_clock())):
            if hit.key is None or await self._jwks_key(hit.kid, hit.alg) is hit.key:
                return Caller(user_id=hit.claims["sub"], token=token, claims=dict(hit.claims))
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise TokenRefused("malformed", f"malformed token: {exc}") from exc
        alg = header.get("alg")
        kid = header.get("kid")
        if not isinstance(alg, str) or alg.lower() == "none":
            raise TokenRefused("algorithm", f"algorithm {alg!r} is not allowed")
        if kid is not None and not isinstance(kid, str):
            raise TokenRefused("malformed", "malformed token: kid is not a string")

        if self._mode == "jwks":
            if alg not in ASYMMETRIC_ALGORITHMS:
                raise TokenRefused(
                    "algorithm", f"algorithm {alg!r} is not allowed with asymmetric signing keys"
                )
            key = await self._jwks_key(kid, alg)
            claims = self._rules.decode(token, key, [key.algorithm_name])
            self._remember(token, claims, key, kid, alg)
        elif self._mode == "hs256":
            if alg != "HS256":
                raise TokenRefused(
                    "algorithm", f"algorithm {alg!r} is not allowed with the HS256 secret"
                )
            claims = self._rules.decode(token, self._secret, ["HS256"])
            self._remember(token, claims, None, kid, alg)
        else:
            if alg != "HS256" and alg not in ASYMMETRIC_ALGORITHMS:
                raise TokenRefused("algorithm", f"algorithm {alg!r} is not allowed")
            claims = self._rules.decode(token, None, [alg])
            await self._auth_server.confirm(token, claims)
        return Caller(user_id=claims["sub"], token=token, claims=claims)

    async def _jwks_key(self, kid: str | None, alg: str) -> jwt.PyJWK:
        assert self._jwks is not None
        return await self._jwks.key_for(kid, alg)

    def _remember(
        self,
        token: str,
        claims: dict[str, Any],
        key: jwt.PyJWK | None,
        kid: str | None,
        alg: str,
    ) -> None:
        exp = claims.get("exp")
        if isinstance(exp, int | float):
            good_until = float(exp) + self._rules.leeway
            self.verified.put(token, VerifiedToken(dict(claims), key, kid, alg, good_until))
