"""The project's public signing keys: fetched from Auth's JWKS, parsed once, cached.

Parsed keys are cached for `JWKS_CACHE_SECONDS`; an unknown `kid` triggers a refetch, but
fetches (of any cause) are never closer than `JWKS_MIN_REFRESH_SECONDS`, and concurrent refreshes
share one fetch, so a flood of forged kids cannot become a flood of requests to Auth. If a
refetch fails, the keys already held stay in use; with no keys at all the request gets a 401 and
the failure is logged. Only asymmetric signature keys are kept: a shared secret is never taken
from a public endpoint, and a key verifies only its own algorithm.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import anyio
import httpx
import jwt

from app.auth.refusal import TokenRefused

logger = logging.getLogger(__name__)

ASYMMETRIC_ALGORITHMS = frozenset(
    {"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA"}
)


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

    async def refetch(self) -> None:
        """Fetch now, past the cache lifetime and the quiet period (SIGHUP: a key was revoked).

        The keys held stay in use if the fetch fails.
        """
        async with self._lock:
            self._last_attempt = None
        await self.refresh()

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


class StaticJwks:
    """Keys given inline (`SUPABASE_JWKS`), as `@supabase/server` takes them: never fetched.

    Rotating or revoking a key means changing the setting and restarting the service.
    """

    def __init__(self, document: str) -> None:
        try:
            self._keys = _parse_jwks(json.loads(document))
        except (ValueError, _JwksUnavailable) as exc:
            raise ValueError(f"SUPABASE_JWKS is not a JWKS: {exc}") from exc
        if not self._keys.by_kid and not self._keys.unnamed:
            raise ValueError("SUPABASE_JWKS lists no asymmetric signature key")
        self.url = "SUPABASE_JWKS"
        self.fetches = 0
        self.holds_keys = True

    async def key_for(self, kid: str | None, alg: str) -> jwt.PyJWK:
        key = self._keys.find(kid, alg)
        if key is None:
            raise TokenRefused("unknown_kid", f"no signing key for kid {kid!r} in SUPABASE_JWKS")
        if key.algorithm_name != alg:
            raise TokenRefused(
                "algorithm", f"algorithm {alg!r} does not match the key's {key.algorithm_name!r}"
            )
        return key

    async def refresh(self, *, prefetch: bool = False) -> None:
        """Nothing to fetch."""

    async def refetch(self) -> None:
        """Nothing to fetch: the keys are the setting's."""


SigningKeys = JwksCache | StaticJwks
