"""Strict mode: claims checked locally, then Supabase Auth (`GET /auth/v1/user`) must agree.

A tiny fake of `/auth/v1/user` is served over real HTTP: it answers 200 with the user for the
tokens it knows, 403 `bad_jwt` for the rest (as GoTrue does for a bad or revoked token), 401
without a Bearer, or whatever status a test forces.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from app.auth import TokenVerifier
from app.config import Settings
from app.errors import AuthError, AuthUnavailable, StoreError
from app.local.postgres import free_port
from app.local.server import ServerThread
from tests.auth.tokens import new_key, unsigned, user_claims
from tests.support.database import make_settings

pytestmark = pytest.mark.anyio

ISSUER = "https://project.example/auth/v1"
ANON = "anon-key-for-the-strict-tests"


# The fields GoTrue's `GET /user` always sends (supabase-auth's `User` requires them).
GOTRUE_USER = {
    "aud": "authenticated",
    "app_metadata": {"provider": "email"},
    "user_metadata": {},
    "created_at": "2026-12-01T00:00:00Z",
}


@dataclass
class AuthState:
    users: dict[str, dict[str, Any]] = field(default_factory=dict)  # token -> user JSON
    status: int | None = None  # forced status
    html: bool = False  # the forced status comes with a non-JSON body (a proxy's error page)
    delay: float = 0.0
    requests: list[dict[str, str | None]] = field(default_factory=list)


@pytest.fixture(scope="module")
def auth_server() -> Iterator[tuple[ServerThread, AuthState]]:
    state = AuthState()

    async def user(request: Request) -> Response:
        header = request.headers.get("authorization")
        state.requests.append({"authorization": header, "apikey": request.headers.get("apikey")})
        await anyio.sleep(state.delay)
        if state.status is not None and state.html:
            return HTMLResponse("<h1>blocked</h1>", state.status)
        if state.status is not None:
            return JSONResponse({"code": "unexpected_failure", "message": "x"}, state.status)
        if not header or not header.startswith("Bearer "):
            return JSONResponse({"code": "no_authorization", "message": "no Bearer"}, 401)
        found = state.users.get(header.removeprefix("Bearer "))
        if found is None:
            return JSONResponse({"code": "bad_jwt", "message": "invalid JWT"}, 403)
        return JSONResponse(GOTRUE_USER | found)

    app = Starlette(routes=[Route("/auth/v1/user", user)])
    with ServerThread(app, free_port()) as server:
        yield server, state


@dataclass
class Strict:
    settings: Settings
    state: AuthState

    def known_token(self, user_id: str | None = None, **claims: object) -> str:
        """A token the fake Auth server accepts, for the user it names."""
        user_id = user_id or str(uuid.uuid4())
        token = new_key().sign(user_claims(issuer=ISSUER, user_id=user_id, **claims))
        self.state.users[token] = {"id": user_id, "aud": "authenticated", "role": "authenticated"}
        return token


@pytest.fixture
def strict(auth_server: tuple[ServerThread, AuthState]) -> Strict:
    server, state = auth_server
    state.__init__()  # type: ignore[misc]
    settings = make_settings(
        auth_mode="strict", supabase_url=server.url, supabase_anon_key=ANON, jwt_issuer=ISSUER
    )
    return Strict(settings=settings, state=state)


async def verify(settings: Settings, token: str) -> Any:
    async with httpx.AsyncClient() as http:
        return await TokenVerifier(settings, http).verify(f"Bearer {token}")


async def test_verify_strict_token_auth_accepts_returns_caller(strict: Strict) -> None:
    user_id = str(uuid.uuid4())
    token = strict.known_token(user_id)

    caller = await verify(strict.settings, token)

    assert caller.user_id == user_id
    assert caller.claims["sub"] == user_id
    assert strict.state.requests == [{"authorization": f"Bearer {token}", "apikey": ANON}]


async def test_verify_strict_every_request_asks_auth(strict: Strict) -> None:
    token = strict.known_token()
    async with httpx.AsyncClient() as http:
        verifier = TokenVerifier(strict.settings, http)
        for _ in range(3):
            await verifier.verify(f"Bearer {token}")

    assert len(strict.state.requests) == 3


async def test_verify_strict_revoked_token_auth_refuses_raises_auth_error(strict: Strict) -> None:
    token = strict.known_token()
    strict.state.users.clear()  # signed out / user deleted: Auth now answers 403 bad_jwt

    with pytest.raises(AuthError, match=r"refused the token \(403\)"):
        await verify(strict.settings, token)


@pytest.mark.parametrize("status", [400, 401, 403, 404])
async def test_verify_strict_auth_client_error_raises_auth_error(
    strict: Strict, status: int
) -> None:
    token = strict.known_token()
    strict.state.status = status

    with pytest.raises(AuthError, match=f"({status})"):
        await verify(strict.settings, token)


@pytest.mark.parametrize("status", [429, 500, 502, 503])
async def test_verify_strict_auth_unavailable_raises_auth_unavailable_503(
    strict: Strict, status: int
) -> None:
    token = strict.known_token()
    strict.state.status = status

    with pytest.raises(AuthUnavailable) as caught:
        await verify(strict.settings, token)

    assert caught.value.status == 503
    assert caught.value.code == "auth_unavailable"
    assert not isinstance(caught.value, StoreError)  # Auth is down, not the database


@pytest.mark.parametrize(("status", "refused"), [(403, True), (500, False), (502, False)])
async def test_verify_strict_auth_error_page_without_json_keeps_the_status_mapping(
    strict: Strict, status: int, refused: bool
) -> None:
    token = strict.known_token()
    strict.state.status, strict.state.html = status, True

    with pytest.raises(AuthError if refused else AuthUnavailable) as caught:
        await verify(strict.settings, token)

    assert caught.value.status == (401 if refused else 503)
    if refused:
        assert f"({status})" in caught.value.detail  # type: ignore[attr-defined]


async def test_verify_strict_auth_unreachable_raises_auth_unavailable_503() -> None:
    settings = make_settings(
        auth_mode="strict", supabase_url=f"http://127.0.0.1:{free_port()}", supabase_anon_key=ANON
    )
    token = new_key().sign(user_claims(issuer=ISSUER))

    with pytest.raises(AuthUnavailable) as caught:
        await verify(settings, token)

    assert caught.value.status == 503


async def test_verify_strict_hanging_auth_raises_auth_unavailable_within_the_db_timeout(
    strict: Strict,
) -> None:
    token = strict.known_token()
    strict.state.delay = 1.5
    settings = strict.settings.model_copy(update={"db_timeout_seconds": 0.2})

    with anyio.fail_after(1.0), pytest.raises(AuthUnavailable):
        await verify(settings, token)


async def test_verify_strict_auth_names_another_user_raises_auth_error(strict: Strict) -> None:
    token = strict.known_token()
    strict.state.users[token] = {"id": str(uuid.uuid4())}

    with pytest.raises(AuthError, match="does not match"):
        await verify(strict.settings, token)


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        pytest.param({"exp": 1_000_000}, "expired", id="expired"),
        pytest.param({"aud": "other"}, "wrong audience", id="wrong aud"),
        pytest.param({"iss": "https://evil.example"}, "wrong issuer", id="wrong iss"),
        pytest.param({"role": "anon"}, "role 'anon'", id="role anon"),
        pytest.param({"role": "service_role"}, "role 'service_role'", id="role service_role"),
    ],
)
async def test_verify_strict_locally_invalid_token_refused_without_asking_auth(
    strict: Strict, claims: dict[str, object], reason: str
) -> None:
    token = strict.known_token(**claims)

    with pytest.raises(AuthError, match=reason):
        await verify(strict.settings, token)

    assert strict.state.requests == []


async def test_verify_strict_sub_not_uuid_refused_without_asking_auth(strict: Strict) -> None:
    token = new_key().sign(user_claims(issuer=ISSUER, sub="admin"))

    with pytest.raises(AuthError, match="sub is not a UUID"):
        await verify(strict.settings, token)

    assert strict.state.requests == []


async def test_verify_strict_alg_none_refused_without_asking_auth(strict: Strict) -> None:
    token = unsigned(user_claims(issuer=ISSUER), {"alg": "none"})

    with pytest.raises(AuthError, match="'none'"):
        await verify(strict.settings, token)

    assert strict.state.requests == []
