"""`TokenVerifier`: `Authorization: Bearer <Supabase access token>` → `Caller`.

One `TokenVerifier` is built in the app's lifespan with the `Settings` and the shared
`httpx.AsyncClient`; `verify()` is then called once per request. Modes (`AUTH_MODE`):

- `rotation` (default): every token a project can issue during a signing-key rotation. An
  asymmetric token (ES256, RS256, …) is verified against the project's public keys
  (`app.auth.jwks`); an HS256 token with `SUPABASE_JWT_SECRET` when it is set, else by one call
  to Supabase Auth (`GET /auth/v1/user`, `app.auth.auth_server`), remembered like any verified
  token, within a per-worker budget of Auth calls (`app.auth.auth_calls`). So tokens signed by
  the legacy secret (in use or previously used) and by a new key are
  both accepted while both are valid, and nothing else is.
- `jwks`: asymmetric tokens only, against the public keys.
- `hs256`: verify with the legacy shared secret `SUPABASE_JWT_SECRET` (HS256 only).
- `strict` (needs the publishable key): check the claims locally (everything but the
  signature), then ask Supabase Auth every time, uncached.

The public keys are `SUPABASE_JWKS` when set (inline JSON: verification with no fetch at all),
else `{SUPABASE_URL}/auth/v1/.well-known/jwks.json`, cached `JWKS_CACHE_SECONDS`. A revoked key
leaves the JWKS, so its tokens are refused within that lifetime; `refetch()` (SIGHUP, see
`app.main`) fetches at once and forgets every remembered token.

In every mode the algorithm list is pinned to the key material: JWKS keys verify only their own
asymmetric algorithm (an HS256 token never meets a public key, so a public key is never an HMAC
secret), the secret verifies only HS256, and `alg: none` is never accepted. The claims are
then checked by `app.auth.claims`. Verified tokens are remembered (`app.auth.cache`) until their
`exp`; a hit verified with a public key still looks its key up, and counts only while that is the
very key it was verified with. Refusals are `TokenRefused` (`app.auth.refusal`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt

from app.auth.auth_calls import AuthCalls
from app.auth.auth_server import AuthServer
from app.auth.bearer import bearer_token
from app.auth.cache import VERIFIED_CACHE_SIZE, VerifiedToken, VerifiedTokens
from app.auth.claims import ClaimRules
from app.auth.jwks import ASYMMETRIC_ALGORITHMS, JwksCache, SigningKeys, StaticJwks
from app.auth.refusal import TokenRefused
from app.auth.sessions import SessionCheck
from app.config import Settings
from app.config.keys import publishable_key
from app.core.domain import Caller
from app.ops import tracing

logger = logging.getLogger(__name__)

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
        apikey_headers = {"apikey": key} if (key := _publishable(settings)) else {}
        base = settings.supabase_url.rstrip("/")
        self._auth_server = AuthServer(
            f"{base}/auth/v1",
            http,
            headers=apikey_headers,
            timeout_seconds=settings.db_timeout_seconds,
        )
        # Every mode but strict (which asks Auth each time) confirms the session now and then.
        self._sessions = (
            SessionCheck(
                self._auth_server,
                settings.session_check_seconds,
                clock=clock,
                wall_clock=wall_clock,
            )
            if self._mode != "strict" and base and apikey_headers
            else None
        )
        self._secret = settings.supabase_jwt_secret.get_secret_value().encode()
        self._keys: SigningKeys | None = None
        inline = settings.supabase_jwks
        needs_url = self._mode == "strict" or (self._mode in ("jwks", "rotation") and not inline)
        if needs_url and not base:
            raise ValueError(f"SUPABASE_URL is required for AUTH_MODE={self._mode}")
        if self._mode == "strict" and not apikey_headers:
            raise ValueError(
                "SUPABASE_PUBLISHABLE_KEY is required for AUTH_MODE=strict (Auth wants it)"
            )
        if self._mode in ("jwks", "rotation"):
            self._keys = (
                StaticJwks(inline)
                if inline
                else JwksCache(
                    f"{base}/auth/v1/.well-known/jwks.json",
                    http,
                    headers=apikey_headers,
                    cache_seconds=settings.jwks_cache_seconds,
                    min_refresh_seconds=settings.jwks_min_refresh_seconds,
                    timeout=httpx.Timeout(settings.db_timeout_seconds),
                    clock=clock,
                )
            )
        if self._mode == "hs256" or (self._mode == "rotation" and self._secret):
            if len(self._secret) < _MIN_HMAC_SECRET_BYTES:
                raise ValueError(
                    f"AUTH_MODE={self._mode} needs SUPABASE_JWT_SECRET of at least "
                    f"{_MIN_HMAC_SECRET_BYTES} bytes"
                )
        else:
            self._secret = b""
        # rotation without the secret: HS256 tokens are Auth's to judge (needs SUPABASE_URL).
        # Bounded (`app.auth.auth_calls`): a forged HS256 token is free to mint, a call is not.
        self._hs256_by_auth = (
            AuthCalls(
                self._auth_server.confirm,
                per_second=settings.auth_confirm_per_second,
                clock=clock,
                wall_clock=wall_clock,
            )
            if self._mode == "rotation" and not self._secret and base
            else None
        )

    async def warm(self) -> bool:
        """Fetch the JWKS ahead of the first request (lifespan): True once the keys are held.

        Failures are only logged, and a failed warm-up does not start the quiet period, so the
        caller may try again (`app.main` retries with backoff until Auth answers: in the local
        stack the service is mounted on Auth's own server, which is not listening yet during the
        lifespan) and the first request is free to fetch. Modes without a JWKS: True.
        """
        if self._keys is None:
            return True
        await self._keys.refresh(prefetch=True)
        return self._keys.holds_keys

    async def refetch(self) -> None:
        """Forget every remembered token and fetch the public keys now (a key was revoked)."""
        self.verified.clear()
        if self._keys is not None:
            await self._keys.refetch()
            logger.warning("signing keys refetched from %s", self._keys.url)

    async def verify(self, authorization_header: str | None) -> Caller:
        with tracing.span("auth.verify", **{"auth.mode": self._mode}):
            caller = await self._verify(authorization_header)
            if self._sessions is not None:  # sign-outs and bans, within SESSION_CHECK_SECONDS
                await self._sessions.ensure(caller.token, caller.claims)
            return caller

    async def _verify(self, authorization_header: str | None) -> Caller:
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

        if self._mode == "strict":
            if alg != "HS256" and alg not in ASYMMETRIC_ALGORITHMS:
                raise TokenRefused("algorithm", f"algorithm {alg!r} is not allowed")
            claims = self._rules.decode(token, None, [alg])
            await self._auth_server.confirm(token, claims)
        elif alg in ASYMMETRIC_ALGORITHMS and self._keys is not None:
            key = await self._jwks_key(kid, alg)
            claims = self._rules.decode(token, key, [key.algorithm_name])
            self._remember(token, claims, key, kid, alg)
        elif alg == "HS256" and self._secret:
            claims = self._rules.decode(token, self._secret, ["HS256"])
            self._remember(token, claims, None, kid, alg)
        elif alg == "HS256" and self._hs256_by_auth is not None:
            claims = self._rules.decode(token, None, ["HS256"])
            await self._hs256_by_auth.confirm(token, claims)
            self._remember(token, claims, None, kid, alg)
        else:
            raise TokenRefused("algorithm", _refusal(self._mode, alg))
        return Caller(user_id=claims["sub"], token=token, claims=claims)

    async def _jwks_key(self, kid: str | None, alg: str) -> jwt.PyJWK:
        assert self._keys is not None
        return await self._keys.key_for(kid, alg)

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


def _publishable(settings: Settings) -> str:
    return publishable_key(settings).value.get_secret_value()


def _refusal(mode: str, alg: str) -> str:
    if mode == "jwks":
        return f"algorithm {alg!r} is not allowed with asymmetric signing keys"
    if mode == "hs256":
        return f"algorithm {alg!r} is not allowed with the HS256 secret"
    return f"algorithm {alg!r} is not allowed"
