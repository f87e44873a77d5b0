"""The rotation-window mode (the default): HS256 and asymmetric tokens of one project, both valid.

During a signing-key rotation, and for one token lifetime after it, a project has valid tokens
signed by the legacy HS256 secret and by the new ES256/RS256 key. A small fake of the project's
Auth is served over real HTTP: its JWKS (whose keys a test changes, to rotate or revoke) and
`GET /auth/v1/user` (which accepts the tokens it knows), each counting its requests.
"""

from __future__ import annotations

import json
import os
import signal
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import anyio
import httpx
import jwt
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.auth import TokenVerifier
from app.auth.sighup import refetch_on_sighup
from app.config import Settings
from app.errors import AuthError, AuthUnavailable
from app.local.postgres import free_port
from app.local.server import ServerThread
from tests.auth.tokens import FakeClock, SigningKey, new_key, user_claims
from tests.support.database import make_settings

pytestmark = pytest.mark.anyio

ISSUER = "https://project.example/auth/v1"
PUBLISHABLE = "sb_publishable_rotation-tests"
SECRET = "the-project-legacy-jwt-secret-at-least-32-characters"
CACHE_SECONDS = 600


@dataclass
class Project:
    keys: list[SigningKey] = field(default_factory=list)  # published in the JWKS
    users: dict[str, str] = field(default_factory=dict)  # token -> user id, for GET /user
    jwks_fetches: int = 0
    user_requests: list[dict[str, str | None]] = field(default_factory=list)


@pytest.fixture(scope="module")
def project_server() -> Iterator[tuple[ServerThread, Project]]:
    project = Project()

    async def jwks(request: Request) -> Response:
        project.jwks_fetches += 1
        return JSONResponse({"keys": [key.public_jwk() for key in project.keys]})

    async def user(request: Request) -> Response:
        header = request.headers.get("authorization") or ""
        project.user_requests.append(
            {"authorization": header, "apikey": request.headers.get("apikey")}
        )
        found = project.users.get(header.removeprefix("Bearer "))
        if found is None:
            return JSONResponse({"code": "bad_jwt", "message": "invalid JWT"}, 403)
        return JSONResponse(
            {
                "id": found,
                "aud": "authenticated",
                "role": "authenticated",
                "app_metadata": {"provider": "email"},
                "user_metadata": {},
                "created_at": "2026-12-01T00:00:00Z",
            }
        )

    app = Starlette(
        routes=[
            Route("/auth/v1/.well-known/jwks.json", jwks),
            Route("/auth/v1/user", user),
        ]
    )
    with ServerThread(app, free_port()) as server:
        yield server, project


@dataclass
class Rotation:
    url: str
    project: Project
    es256: SigningKey

    def settings(self, **overrides: object) -> Settings:
        base: dict[str, object] = {
            "supabase_url": self.url,
            "supabase_publishable_key": PUBLISHABLE,
            "jwt_issuer": ISSUER,
            "jwks_cache_seconds": CACHE_SECONDS,
        }
        return make_settings(**(base | overrides))

    def hs256(self, user_id: str, secret: str = SECRET) -> str:
        return jwt.encode(user_claims(issuer=ISSUER, user_id=user_id), secret, algorithm="HS256")

    def asymmetric(self, user_id: str, key: SigningKey | None = None) -> str:
        return (key or self.es256).sign(user_claims(issuer=ISSUER, user_id=user_id))


@pytest.fixture
def rotation(project_server: tuple[ServerThread, Project]) -> Rotation:
    server, project = project_server
    project.__init__()  # type: ignore[misc]
    key = new_key()
    project.keys.append(key)
    return Rotation(url=server.url, project=project, es256=key)


async def test_verify_rotation_accepts_hs256_and_es256_tokens_of_the_same_user(
    rotation: Rotation,
) -> None:
    user_id = str(uuid.uuid4())
    settings = rotation.settings(supabase_jwt_secret=SECRET)
    assert settings.auth_mode == "rotation"  # the default

    async with httpx.AsyncClient() as http:
        verifier = TokenVerifier(settings, http)
        legacy = await verifier.verify(f"Bearer {rotation.hs256(user_id)}")
        current = await verifier.verify(f"Bearer {rotation.asymmetric(user_id)}")

    assert legacy.user_id == current.user_id == user_id
    assert rotation.project.user_requests == []  # both verified locally


async def test_verify_rotation_without_the_secret_asks_auth_once_for_an_hs256_token(
    rotation: Rotation,
) -> None:
    user_id = str(uuid.uuid4())
    legacy = rotation.hs256(user_id, secret="a-secret-only-the-project-knows-0123456789")
    rotation.project.users[legacy] = user_id

    async with httpx.AsyncClient() as http:
        verifier = TokenVerifier(rotation.settings(), http)
        for _ in range(3):
            assert (await verifier.verify(f"Bearer {legacy}")).user_id == user_id
        assert (await verifier.verify(f"Bearer {rotation.asymmetric(user_id)}")).user_id == user_id

    # One GET /user for the HS256 token, remembered after; none for the ES256 one.
    assert rotation.project.user_requests == [
        {"authorization": f"Bearer {legacy}", "apikey": PUBLISHABLE}
    ]


async def test_verify_rotation_without_the_secret_bounds_the_auth_calls_of_forged_tokens(
    rotation: Rotation,
) -> None:
    """Forged HS256 tokens are free to mint: a flood of them costs Auth at most the budget."""
    async with httpx.AsyncClient() as http:
        verifier = TokenVerifier(rotation.settings(auth_confirm_per_second=2), http)
        outcomes, refused = [], []
        for _ in range(40):
            forged = rotation.hs256(str(uuid.uuid4()), secret="forged-secret-0123456789abcdefghij")
            try:
                await verifier.verify(f"Bearer {forged}")
            except AuthUnavailable:
                outcomes.append("503")
            except AuthError:
                outcomes.append("401")
                refused.append(forged)
        for _ in range(10):  # a refused token again: refused with no call at all
            with pytest.raises(AuthError):
                await verifier.verify(f"Bearer {refused[0]}")

    assert len(rotation.project.user_requests) == 4  # twice the per-second rate
    assert outcomes.count("401") == 4 and outcomes.count("503") == 36


async def test_verify_rotation_without_the_secret_refuses_an_hs256_token_auth_refuses(
    rotation: Rotation,
) -> None:
    forged = rotation.hs256(str(uuid.uuid4()), secret="not-the-projects-secret-0123456789abcdef")

    async with httpx.AsyncClient() as http:
        with pytest.raises(AuthError) as caught:
            await TokenVerifier(rotation.settings(), http).verify(f"Bearer {forged}")

    assert caught.value.reason == "revoked"  # type: ignore[attr-defined]


async def test_verify_rotation_with_the_secret_refuses_an_hs256_token_of_another_secret(
    rotation: Rotation,
) -> None:
    forged = rotation.hs256(str(uuid.uuid4()), secret="not-the-projects-secret-0123456789abcdef")

    async with httpx.AsyncClient() as http:
        verifier = TokenVerifier(rotation.settings(supabase_jwt_secret=SECRET), http)
        with pytest.raises(AuthError) as caught:
            await verifier.verify(f"Bearer {forged}")

    assert caught.value.reason == "signature"  # type: ignore[attr-defined]
    assert rotation.project.user_requests == []


async def test_verify_rotation_standby_and_new_key_both_verify_after_a_rotation(
    rotation: Rotation,
) -> None:
    standby = new_key()
    rotation.project.keys.append(standby)  # published before it signs anything
    user_id = str(uuid.uuid4())

    async with httpx.AsyncClient() as http:
        verifier = TokenVerifier(rotation.settings(), http)
        old = await verifier.verify(f"Bearer {rotation.asymmetric(user_id)}")
        new = await verifier.verify(f"Bearer {rotation.asymmetric(user_id, standby)}")

    assert old.user_id == new.user_id == user_id


async def test_verify_rotation_revoked_key_is_refused_once_the_jwks_cache_expires(
    rotation: Rotation,
) -> None:
    clock = FakeClock()
    token = f"Bearer {rotation.asymmetric(str(uuid.uuid4()))}"
    async with httpx.AsyncClient() as http:
        verifier = TokenVerifier(rotation.settings(), http, clock=clock)
        await verifier.verify(token)
        rotation.project.keys.clear()  # revoked: it leaves the JWKS

        clock.advance(CACHE_SECONDS - 1)
        await verifier.verify(token)  # still within the cache lifetime
        clock.advance(2)
        with pytest.raises(AuthError) as caught:
            await verifier.verify(token)

    assert caught.value.reason == "unknown_kid"  # type: ignore[attr-defined]


async def test_verifier_refetch_refuses_a_revoked_key_at_once(rotation: Rotation) -> None:
    token = f"Bearer {rotation.asymmetric(str(uuid.uuid4()))}"
    async with httpx.AsyncClient() as http:
        verifier = TokenVerifier(rotation.settings(), http, clock=FakeClock())
        await verifier.verify(token)
        rotation.project.keys.clear()

        await verifier.refetch()  # no time has passed: past the cache and the quiet period
        with pytest.raises(AuthError, match="no signing key"):
            await verifier.verify(token)

    assert rotation.project.jwks_fetches == 2


async def test_sighup_refetches_the_signing_keys_at_once(rotation: Rotation) -> None:
    token = f"Bearer {rotation.asymmetric(str(uuid.uuid4()))}"
    async with httpx.AsyncClient() as http:
        verifier = TokenVerifier(rotation.settings(), http, clock=FakeClock())
        await verifier.verify(token)
        rotation.project.keys.clear()
        done = anyio.Event()

        async def refetch() -> None:
            await verifier.refetch()
            done.set()

        stop = refetch_on_sighup(refetch)
        try:
            os.kill(os.getpid(), signal.SIGHUP)
            with anyio.fail_after(5):
                await done.wait()
        finally:
            stop()
        with pytest.raises(AuthError, match="no signing key"):
            await verifier.verify(token)


async def test_verify_inline_jwks_verifies_with_no_fetch(rotation: Rotation) -> None:
    inline = json.dumps({"keys": [rotation.es256.public_jwk()]})
    user_id = str(uuid.uuid4())

    async with httpx.AsyncClient() as http:
        verifier = TokenVerifier(rotation.settings(supabase_jwks=inline), http)
        assert await verifier.warm()
        assert (await verifier.verify(f"Bearer {rotation.asymmetric(user_id)}")).user_id == user_id
        with pytest.raises(AuthError, match="SUPABASE_JWKS"):
            await verifier.verify(f"Bearer {rotation.asymmetric(user_id, new_key())}")

    assert rotation.project.jwks_fetches == 0


async def test_verify_rotation_hs256_token_while_auth_is_down_is_auth_unavailable(
    rotation: Rotation,
) -> None:
    """Auth cannot judge the HS256 token: 503 (retry), not a 401 that would sign the user out."""
    inline = json.dumps({"keys": [rotation.es256.public_jwk()]})
    settings = rotation.settings(
        supabase_url=f"http://127.0.0.1:{free_port()}", supabase_jwks=inline
    )

    async with httpx.AsyncClient() as http:
        verifier = TokenVerifier(settings, http)
        with pytest.raises(AuthUnavailable):
            await verifier.verify(f"Bearer {rotation.hs256(str(uuid.uuid4()))}")
        user_id = str(uuid.uuid4())  # asymmetric tokens need no Auth at all
        assert (await verifier.verify(f"Bearer {rotation.asymmetric(user_id)}")).user_id == user_id
