"""Access-token verification: `Authorization: Bearer <Supabase access token>` → `Caller`.

One `TokenVerifier` is built in the app's lifespan with the `Settings` and the shared
`httpx.AsyncClient`; `verify()` is then called once per request. Modes (`AUTH_MODE`):

- `jwks` (default): verify locally against the project's public keys from
  `{SUPABASE_URL}/auth/v1/.well-known/jwks.json`. Parsed keys are cached for
  `JWKS_CACHE_SECONDS`; an unknown `kid` triggers a refetch, but fetches (of any cause) are never
  closer than `JWKS_MIN_REFRESH_SECONDS`, and concurrent refreshes share one fetch — so a flood of
  forged kids cannot become a flood of requests to Auth. If a refetch fails, the keys already held
  stay in use; with no keys at all the request gets a 401 and the failure is logged.
- `hs256`: verify with the legacy shared secret `SUPABASE_JWT_SECRET` (HS256 only).
- `strict` (needs `SUPABASE_ANON_KEY`): check the claims locally (everything but the
  signature), then ask Supabase Auth (`GET /auth/v1/user`, through supabase-auth's
  `AsyncGoTrueClient.get_user`): the signature, the session and the
  user must still be valid there, so a sign-out or a deleted user is refused at once. Auth
  answering 400/401/403 (or anything but 200) → 401. Auth unreachable, 5xx or 429 → `StoreError`
  (503, code `auth_unavailable`): we cannot tell whether the token is good, so we fail closed —
  but not with "sign in again", which would not help while Auth is down and would make the app
  drop a session that may be perfectly valid.

In every mode the algorithm list is pinned to the key material: JWKS keys verify only their own
asymmetric algorithm (an HS256 token is refused before any key lookup, so a public key is never an
HMAC secret), the secret verifies only HS256, and `alg: none` is never accepted. Then `exp`, `nbf`
and `iat` (with `JWT_LEEWAY_SECONDS`), `aud == JWT_AUDIENCE`, `iss == JWT_ISSUER` when set,
`role == "authenticated"` (refusing the anon and service_role API keys) and `sub` a UUID.
Calls to Auth (JWKS, `/user`) are bounded by `DB_TIMEOUT_SECONDS`, like every Supabase API call,
so a hanging Auth server cannot hold a request past the 3-second promise.

Verified tokens are remembered (a bounded LRU keyed by the token string, `VERIFIED_CACHE_SIZE`)
until their `exp` (with the leeway): a client's next turn skips the signature check. In `jwks`
mode a hit still looks its key up, and counts only while that is the very key it was verified
with, so a rotated-out key is refused as before. `strict` mode asks Auth every time, uncached.

Every refusal is a `TokenRefused` (an `AuthError`: 401, the warm sign-in message) whose `detail`
names the reason for the logs and whose `reason` is one word from `REFUSAL_REASONS`, for the
request's log line and the `chat_auth_refusals_total{reason}` metric. Neither reaches the client,
and the token itself is never logged.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import anyio
import httpx
import jwt
from supabase_auth import AsyncGoTrueClient
from supabase_auth.errors import AuthApiError, AuthRetryableError, AuthUnknownError
from supabase_auth.errors import AuthError as GoTrueError

from app.config import Settings
from app.core.domain import Caller
from app.errors import AuthError, StoreError

logger = logging.getLogger(__name__)

AUTHENTICATED_ROLE = "authenticated"
ASYMMETRIC_ALGORITHMS = frozenset(
    {"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA"}
)
_REQUIRED_CLAIMS = ["exp", "sub", "aud", "role"]
VERIFIED_CACHE_SIZE = 10_000

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
_MISSING_CLAIM_REASONS: dict[str, RefusalReason] = {
    "aud": "audience",
    "role": "role",
    "sub": "subject",
}


class TokenRefused(AuthError):
    """A refused token and why, for operators (logs and metrics); clients get `user_message`."""

    def __init__(self, reason: RefusalReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


_MAX_TOKEN_CHARS = 16_384  # Supabase tokens are ~1 KB; refuse megabyte headers before parsing
_MIN_HMAC_SECRET_BYTES = 32  # Supabase's own minimum; shorter makes PyJWT warn on every call


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


@dataclass(frozen=True)
class _Verified:
    claims: dict[str, Any]
    key: jwt.PyJWK | None  # the JWKS key it verified with (None: the HS256 secret)
    kid: str | None
    alg: str
    good_until: float  # wall clock: exp + leeway


class _VerifiedTokens:
    """A bounded LRU of verified tokens (token string → what it verified as)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[str, _Verified] = OrderedDict()

    def get(self, token: str, now: float) -> _Verified | None:
        entry = self._entries.get(token)
        if entry is None:
            return None
        if now >= entry.good_until:
            del self._entries[token]
            return None
        self._entries.move_to_end(token)
        return entry

    def put(self, token: str, entry: _Verified) -> None:
        self._entries[token] = entry
        self._entries.move_to_end(token)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


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
        self.verified = _VerifiedTokens(cache_size)
        self._http = http
        self._audience = settings.jwt_audience
        self._issuer = settings.jwt_issuer or None
        self._leeway = settings.jwt_leeway_seconds
        anon_key = settings.supabase_anon_key.get_secret_value()
        self._apikey_headers = {"apikey": anon_key} if anon_key else {}
        base = settings.supabase_url.rstrip("/")
        self._timeout = httpx.Timeout(settings.db_timeout_seconds)
        self._timeout_seconds = settings.db_timeout_seconds
        # supabase-auth's client, for `get_user(jwt)` only: no session, nothing stored, the shared
        # pool; so one instance serves every request.
        self._gotrue = AsyncGoTrueClient(
            url=f"{base}/auth/v1",
            headers=dict(self._apikey_headers),
            http_client=http,
            auto_refresh_token=False,
            persist_session=False,
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
                headers=self._apikey_headers,
                cache_seconds=settings.jwks_cache_seconds,
                min_refresh_seconds=settings.jwks_min_refresh_seconds,
                timeout=self._timeout,
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
            claims = self._decode(token, key, [key.algorithm_name])
            self._remember(token, claims, key, kid, alg)
        elif self._mode == "hs256":
            if alg != "HS256":
                raise TokenRefused(
                    "algorithm", f"algorithm {alg!r} is not allowed with the HS256 secret"
                )
            claims = self._decode(token, self._secret, ["HS256"])
            self._remember(token, claims, None, kid, alg)
        else:
            if alg != "HS256" and alg not in ASYMMETRIC_ALGORITHMS:
                raise TokenRefused("algorithm", f"algorithm {alg!r} is not allowed")
            claims = self._decode(token, None, [alg])
            await self._ask_auth_server(token, claims)
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
            good_until = float(exp) + self._leeway
            self.verified.put(token, _Verified(dict(claims), key, kid, alg, good_until))

    # --- claims -------------------------------------------------------------------------------
    def _decode(
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
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
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

    # --- strict mode --------------------------------------------------------------------------
    async def _ask_auth_server(self, token: str, claims: Mapping[str, Any]) -> None:
        """Supabase Auth (`GET /auth/v1/user`) must still accept the token and name its user."""
        try:
            with anyio.fail_after(self._timeout_seconds):
                answer = await self._gotrue.get_user(token)
        except TimeoutError as exc:
            logger.warning("Supabase Auth did not answer GET /user in %ss", self._timeout_seconds)
            raise StoreError("auth server timed out", code="auth_unavailable") from exc
        except GoTrueError as exc:
            status = _status_of(exc)
            if status is None or status == 429 or status >= 500:
                logger.warning("Supabase Auth unavailable for GET /user: %r", exc)
                raise StoreError(f"auth server answered {status}", code="auth_unavailable") from exc
            raise TokenRefused("revoked", f"auth server refused the token ({status})") from exc
        except ValueError as exc:  # a 200 whose body is not a user (pydantic's ValidationError)
            raise StoreError("auth server sent invalid JSON", code="auth_unavailable") from exc
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


# --- JWKS -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _KeySet:
    by_kid: dict[str, jwt.PyJWK] = field(default_factory=dict)
    unnamed: tuple[jwt.PyJWK, ...] = ()

    def find(self, kid: str | None, alg: str) -> jwt.PyJWK | None:
        if kid is not None:
            return self.by_kid.get(kid)
        # No kid: only unambiguous when exactly one key speaks this algorithm.
        candidates = [k for k in (*self.by_kid.values(), *self.unnamed) if k.algorithm_name == alg]
        return candidates[0] if len(candidates) == 1 else None


class JwksCache:
    """The project's public signing keys, parsed once, refreshed on expiry or an unknown kid.

    Every fetch attempt (success or not) starts the `min_refresh_seconds` quiet period, and
    callers that queue behind a running fetch use its result instead of fetching again.
    """

    def __init__(
        self,
        url: str,
        http: httpx.AsyncClient,
        *,
        headers: Mapping[str, str],
        cache_seconds: float,
        min_refresh_seconds: float,
        timeout: httpx.Timeout,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self._timeout = timeout
        self._http = http
        self._headers = dict(headers)
        self._cache_seconds = cache_seconds
        self._min_refresh = min_refresh_seconds
        self._clock = clock
        self._keys: _KeySet | None = None
        self._fetched_at = 0.0
        self._last_attempt: float | None = None
        self._attempts = 0  # completed fetch attempts; lets queued callers see they were served
        self._lock = anyio.Lock()
        self.fetches = 0  # for tests and metrics

    async def key_for(self, kid: str | None, alg: str) -> jwt.PyJWK:
        if self._keys is None or self._clock() - self._fetched_at >= self._cache_seconds:
            await self.refresh()
        key = self._keys.find(kid, alg) if self._keys is not None else None
        if key is None and self._keys is not None:
            await self.refresh()  # maybe the keys rotated; rate-limited
            key = self._keys.find(kid, alg)
        if self._keys is None:
            raise TokenRefused("no_keys", "no signing keys: the JWKS could not be fetched")
        if key is None:
            raise TokenRefused("unknown_kid", f"no signing key for kid {kid!r}")
        if key.algorithm_name != alg:
            raise TokenRefused(
                "algorithm", f"algorithm {alg!r} does not match the key's {key.algorithm_name!r}"
            )
        return key

    @property
    def holds_keys(self) -> bool:
        return self._keys is not None

    async def refresh(self, *, prefetch: bool = False) -> None:
        """Fetch the JWKS unless a fetch just happened or another caller is doing it.

        The quiet period holds even when no keys are held: during an Auth outage every request
        would otherwise become a fetch. A failed `prefetch` (warm-up) does not start it.
        """
        seen = self._attempts
        async with self._lock:
            if self._attempts != seen:
                return  # someone fetched while we waited: use their result
            now = self._clock()
            if self._last_attempt is not None and now - self._last_attempt < self._min_refresh:
                return
            previous, self._last_attempt = self._last_attempt, now
            try:
                self._keys = await self._fetch()
                self._fetched_at = self._clock()
            except _JwksUnavailable as exc:
                held = "keeping the keys held" if self._keys is not None else "no keys held"
                # A warm-up is retried by its caller, which warns if it gives up.
                level = logging.INFO if prefetch else logging.WARNING
                logger.log(level, "JWKS fetch from %s failed (%s): %s", self.url, held, exc)
                if prefetch:
                    self._last_attempt = previous
            finally:
                self._attempts += 1

    async def _fetch(self) -> _KeySet:
        self.fetches += 1
        try:
            response = await self._http.get(self.url, headers=self._headers, timeout=self._timeout)
        except httpx.HTTPError as exc:
            raise _JwksUnavailable(repr(exc)) from exc
        if response.status_code != 200:
            raise _JwksUnavailable(f"HTTP {response.status_code}")
        try:
            document = response.json()
        except ValueError as exc:
            raise _JwksUnavailable("body is not JSON") from exc
        keys = _parse_jwks(document)
        if not keys.by_kid and not keys.unnamed:
            logger.warning(
                "JWKS at %s lists no asymmetric keys (an HS256-only project? use AUTH_MODE=hs256)",
                self.url,
            )
        return keys


class _JwksUnavailable(Exception):
    pass


def _parse_jwks(document: object) -> _KeySet:
    """Usable public signature keys of a JWKS; symmetric or unparsable entries are skipped."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise _JwksUnavailable('not a JWKS: no "keys" list')
    by_kid: dict[str, jwt.PyJWK] = {}
    unnamed: list[jwt.PyJWK] = []
    for entry in document["keys"]:
        if not isinstance(entry, dict) or entry.get("kty") == "oct":
            continue  # never accept a shared secret from a public endpoint
        if entry.get("use", "sig") != "sig":
            continue
        try:
            key = jwt.PyJWK(entry)
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError) as exc:
            logger.warning("skipping unusable JWK kid=%r: %s", entry.get("kid"), exc)
            continue
        if key.algorithm_name not in ASYMMETRIC_ALGORITHMS:
            continue
        kid = entry.get("kid")
        if isinstance(kid, str):
            by_kid[kid] = key
        else:
            unnamed.append(key)
    return _KeySet(by_kid=by_kid, unnamed=tuple(unnamed))
