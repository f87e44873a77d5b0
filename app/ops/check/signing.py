"""Which key signs the project's tokens now, and which `AUTH_MODE` accepts every valid one.

The JWKS alone cannot say: Supabase publishes a *standby* key before it signs anything, so a
project that has only created one still issues HS256 tokens, and `AUTH_MODE=jwks` would refuse
every one of them. So the check also reads the header of a freshly issued token:

1. with a secret key that may call the Auth admin API: a throwaway user is created, signs in with
   a password (the publishable key in `apikey`), and is deleted at once;
2. else the legacy anon key's header, a JWT the project signed (on hosted projects it stays HS256
   after a rotation, so this says less, and the detail says so).

The JWKS does not say which of the other published keys are standby and which previously used.
With `SUPABASE_ACCESS_TOKEN` (a personal access token) the Management API does
(`GET /v1/projects/{ref}/config/auth/signing-keys`: each key's status, the legacy HS256 secret
included), and the report names each key's state and whether the legacy secret is still valid;
without it they are listed together. Nothing else is written.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt

from app.config.keys import is_jwt
from app.ops.check.project import Project
from app.ops.check.result import Result

ASYMMETRIC_KTY = frozenset({"EC", "RSA", "OKP"})
NAME = "signing keys"
# The Management API's statuses, as the report names them.
STATES = {
    "standby": "standby",
    "in_use": "in use",
    "previously_used": "previously used",
    "revoked": "revoked",
}


@dataclass(frozen=True)
class KeyStates:
    """What the Management API says: each asymmetric key's state by kid, and the legacy secret's."""

    by_kid: dict[str, str]
    legacy: str | None  # the HS256 secret's state; None: the project lists none


@dataclass(frozen=True)
class Signer:
    alg: str
    kid: str | None
    source: str  # how the token was obtained, for the report
    fresh: bool = True  # False: the legacy anon key, which may predate a rotation

    def describe(self) -> str:
        if self.alg == "HS256":
            return f"the legacy JWT secret (HS256; read from {self.source})"
        return f"{self.alg} kid={self.kid} (read from {self.source})"


def check_signing_keys(p: Project) -> Result:
    url = f"{p.base}/auth/v1/.well-known/jwks.json"
    try:
        response = p.http.get(url, headers=p.publishable.headers())
    except httpx.HTTPError as exc:
        return Result(NAME, "fail", f"cannot reach {url}: {exc!r}")
    if response.status_code != 200:
        return Result(NAME, "fail", f"{url} answered HTTP {response.status_code}")
    try:
        keys = [k for k in response.json().get("keys", []) if isinstance(k, dict)]
    except (ValueError, AttributeError):
        return Result(NAME, "fail", f"{url} is not a JWKS document")
    published = [k for k in keys if k.get("kty") in ASYMMETRIC_KTY]
    states = key_states(p)
    if isinstance(states, Result):
        return states
    return assess(p.settings.auth_mode, published, fresh_signer(p), states)


def assess(
    mode: str,
    published: list[dict[str, Any]],
    signer: Signer | None,
    states: KeyStates | None = None,
) -> Result:
    """The report for these published keys and this signer under `AUTH_MODE=mode`."""
    result = _assess(mode, published, signer, states)
    if states is None:
        return result
    legacy = states.legacy or "not listed"
    return Result(
        NAME, result.status, f"{result.detail} (Management API: the legacy JWT secret is {legacy})"
    )


def key_states(p: Project) -> KeyStates | Result | None:
    """Each key's state from the Management API; None without an access token."""
    token = p.settings.supabase_access_token.get_secret_value()
    if not token:
        return None
    ref = p.settings.supabase_project_ref or _ref_of(p.base)
    if not ref:
        return Result(
            NAME,
            "fail",
            "SUPABASE_ACCESS_TOKEN is set but the project ref is unknown: set "
            "SUPABASE_PROJECT_REF (SUPABASE_URL is not https://<ref>.supabase.co)",
        )
    base = p.settings.supabase_management_api_url.rstrip("/")
    url = f"{base}/v1/projects/{ref}/config/auth/signing-keys"
    try:
        response = p.http.get(url, headers={"Authorization": f"Bearer {token}"})
    except httpx.HTTPError as exc:
        return Result(NAME, "fail", f"cannot reach the Management API {url}: {exc!r}")
    if response.status_code != 200:
        return Result(
            NAME,
            "fail",
            f"the Management API answered HTTP {response.status_code} for {url}: check "
            "SUPABASE_ACCESS_TOKEN (a personal access token with access to the project)",
        )
    try:
        listed = [k for k in response.json().get("keys", []) if isinstance(k, dict)]
    except (ValueError, AttributeError):
        return Result(NAME, "fail", f"the Management API's {url} is not a signing-keys list")
    by_kid: dict[str, str] = {}
    legacy: str | None = None
    for key in listed:
        state = STATES.get(str(key.get("status")), str(key.get("status")))
        if key.get("algorithm") == "HS256":
            legacy = state
            continue
        jwk = key.get("public_jwk")
        kid = jwk.get("kid") if isinstance(jwk, dict) and jwk.get("kid") else key.get("id")
        by_kid[str(kid)] = state
    return KeyStates(by_kid, legacy)


def _ref_of(base: str) -> str:
    host = urlsplit(base).hostname or ""
    return host.removesuffix(".supabase.co") if host.endswith(".supabase.co") else ""


def _assess(
    mode: str,
    published: list[dict[str, Any]],
    signer: Signer | None,
    states: KeyStates | None,
) -> Result:
    if signer is not None and not signer.fresh and signer.alg == "HS256" and published:
        signer = None  # an HS256 anon key says nothing about keys published since
    if signer is not None and signer.alg != "HS256":
        if signer.kid not in {k.get("kid") for k in published}:
            return Result(
                NAME, "fail", f"the key that signs now, {signer.describe()}, is not in the JWKS"
            )
        others = [k for k in published if k.get("kid") != signer.kid]
        said = f"signs now: {signer.describe()}; {_listed(others, states)}"
        if mode == "hs256":
            return Result(
                NAME,
                "fail",
                f"{said}. AUTH_MODE=hs256 refuses every token signed now: set AUTH_MODE=rotation",
            )
        if mode == "jwks" and states is not None and states.legacy in (None, "revoked"):
            return Result(NAME, "ok", f"{said}. AUTH_MODE=jwks accepts every valid token")
        if mode == "jwks":
            return Result(
                NAME,
                "ok",
                f"{said}. AUTH_MODE=jwks refuses HS256 tokens issued before the rotation "
                "(right once the legacy secret is revoked); AUTH_MODE=rotation accepts them too",
            )
        return Result(NAME, "ok", f"{said}. AUTH_MODE={mode} accepts every valid token")
    if signer is not None:  # HS256: any published key is standby (or previously used)
        said = f"signs now: {signer.describe()}; {_listed(published, states)}"
        if mode == "jwks":
            return Result(
                NAME,
                "fail",
                f"{said}. AUTH_MODE=jwks refuses every token signed now (every user would get "
                "401): set AUTH_MODE=rotation, which also accepts the standby key's tokens "
                "once it is rotated in",
            )
        if mode == "hs256" and published:
            return Result(
                NAME,
                "ok",
                f"{said}. AUTH_MODE=hs256 accepts the tokens signed now, not the standby key's "
                "once it is rotated in: set AUTH_MODE=rotation before rotating",
            )
        return Result(NAME, "ok", f"{said}. AUTH_MODE={mode} accepts every valid token")
    said = f"cannot tell which key signs now (no fresh token); {_listed(published, states)}"
    if mode == "jwks" and not published:
        return Result(
            NAME,
            "fail",
            f"{said}. A legacy HS256 project: AUTH_MODE=jwks refuses its tokens; "
            "set AUTH_MODE=rotation",
        )
    if mode in ("jwks", "hs256") and published:
        return Result(
            NAME,
            "fail",
            f"{said}. AUTH_MODE={mode} refuses one kind of token the project may issue "
            "(a published key may still be standby): set AUTH_MODE=rotation",
        )
    return Result(NAME, "ok", f"{said}. AUTH_MODE={mode} accepts every valid token")


def fresh_signer(p: Project) -> Signer | None:
    """The signer of a token the project issues now, or None when none can be obtained."""
    header = _throwaway_sign_in(p)
    if header is not None:
        return _signer(header, "a throwaway user's sign-in")
    anon = p.settings.supabase_anon_key.get_secret_value()
    legacy = anon or p.publishable.value.get_secret_value()
    if is_jwt(legacy):
        try:
            header = jwt.get_unverified_header(legacy)
        except jwt.InvalidTokenError:
            return None
        return _signer(header, "the legacy anon key", fresh=False)
    return None


def _throwaway_sign_in(p: Project) -> dict[str, Any] | None:
    if not p.secret or not p.publishable:
        return None
    email = f"chat-stream-check-{uuid.uuid4().hex[:12]}@example.com"
    password = secrets.token_urlsafe(24)
    admin = f"{p.base}/auth/v1/admin/users"
    try:
        created = p.http.post(
            admin,
            json={"email": email, "password": password, "email_confirm": True},
            headers=p.secret.headers(),
        )
        if created.status_code not in (200, 201):
            return None
        user_id = created.json().get("id")
        try:
            signed_in = p.http.post(
                f"{p.base}/auth/v1/token",
                params={"grant_type": "password"},
                json={"email": email, "password": password},
                headers=p.publishable.headers(),
            )
        finally:
            if isinstance(user_id, str):
                p.http.delete(f"{admin}/{user_id}", headers=p.secret.headers())
        token = signed_in.json().get("access_token") if signed_in.status_code == 200 else None
        return jwt.get_unverified_header(token) if isinstance(token, str) else None
    except (httpx.HTTPError, ValueError, AttributeError, jwt.InvalidTokenError):
        return None


def _signer(header: dict[str, Any], source: str, *, fresh: bool = True) -> Signer | None:
    alg, kid = header.get("alg"), header.get("kid")
    if not isinstance(alg, str):
        return None
    return Signer(alg, kid if isinstance(kid, str) else None, source, fresh)


def _listed(keys: list[dict[str, Any]], states: KeyStates | None = None) -> str:
    if not keys:
        return "no other key published"
    if states is not None:
        named = ", ".join(
            f"{k.get('alg', k.get('kty'))} kid={k.get('kid')} "
            f"{states.by_kid.get(str(k.get('kid')), 'not listed by the Management API')}"
            for k in keys
        )
        return f"published, not signing: {named}"
    named = ", ".join(f"{k.get('alg', k.get('kty'))} kid={k.get('kid')}" for k in keys)
    return f"published, not signing (standby or previously used): {named}"
