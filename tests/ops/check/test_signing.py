"""`chat-stream check` on signing keys: the JWKS *and* a freshly issued token say which key signs.

The case that matters: a project that has just created a standby ES256 key publishes it in its
JWKS while its tokens are still HS256. A fake of that project's Auth is served over real HTTP:
its JWKS, the admin API (a throwaway user is created and deleted) and the password grant, which
answers with an HS256 token (or an ES256 one, once a test rotates the key in).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.local.postgres import free_port
from app.local.server import ServerThread
from app.ops.check.project import Project
from app.ops.check.signing import Signer, assess, check_signing_keys
from tests.auth.tokens import SigningKey, new_key, user_claims
from tests.support.database import make_settings

PUBLISHABLE = "sb_publishable_ACJWlzQHlZjBrEguHvfOxg_3BJgxAaH"
SECRET = "sb_secret_N7UND0UgjKTVK-Uodkm0Hg_xSvEMPvz"
JWT_SECRET = "super-secret-jwt-token-with-at-least-32-characters-long"


@dataclass
class FakeProject:
    standby: SigningKey = field(default_factory=new_key)
    signing: SigningKey | None = None  # None: the legacy HS256 secret signs
    users: dict[str, str] = field(default_factory=dict)  # id -> email
    deleted: list[str] = field(default_factory=list)
    secret_as_bearer: list[str] = field(default_factory=list)  # paths that got Bearer sb_secret_


@pytest.fixture(scope="module")
def fake_server() -> Iterator[tuple[str, FakeProject]]:
    state = FakeProject()

    def admin(request: Request) -> bool:
        if (request.headers.get("authorization") or "").startswith("Bearer sb_"):
            state.secret_as_bearer.append(request.url.path)
        return request.headers.get("apikey") == SECRET

    async def jwks(request: Request) -> Response:
        return JSONResponse({"keys": [state.standby.public_jwk()]})

    async def users(request: Request) -> Response:
        if not admin(request):
            return JSONResponse({"code": "not_admin", "msg": "User not allowed"}, 403)
        body = await request.json()
        user_id = str(uuid.uuid4())
        state.users[user_id] = body["email"]
        return JSONResponse({"id": user_id, "email": body["email"]})

    async def user(request: Request) -> Response:
        if not admin(request):
            return JSONResponse({"code": "not_admin", "msg": "User not allowed"}, 403)
        state.deleted.append(request.path_params["user_id"])
        return JSONResponse({})

    async def token(request: Request) -> Response:
        if request.headers.get("apikey") != PUBLISHABLE:
            return JSONResponse({"message": "Invalid API key"}, 401)
        body = await request.json()
        found = [uid for uid, email in state.users.items() if email == body["email"]]
        claims = user_claims(issuer="https://fake.example/auth/v1", user_id=found[0])
        if state.signing is None:
            access = jwt.encode(claims, JWT_SECRET, algorithm="HS256")
        else:
            access = state.signing.sign(claims)
        return JSONResponse({"access_token": access, "token_type": "bearer"})

    app = Starlette(
        routes=[
            Route("/auth/v1/.well-known/jwks.json", jwks),
            Route("/auth/v1/admin/users", users, methods=["POST"]),
            Route("/auth/v1/admin/users/{user_id}", user, methods=["DELETE"]),
            Route("/auth/v1/token", token, methods=["POST"]),
        ]
    )
    with ServerThread(app, free_port()) as server:
        yield server.url, state


@pytest.fixture
def fake(fake_server: tuple[str, FakeProject]) -> tuple[str, FakeProject]:
    url, state = fake_server
    state.__init__()  # type: ignore[misc]
    return url, state


def run(url: str, **settings: Any) -> tuple[str, str]:
    base: dict[str, Any] = {
        "supabase_url": url,
        "supabase_publishable_key": PUBLISHABLE,
        "supabase_secret_key": SECRET,
    }
    with httpx.Client(timeout=5) as http:
        project = Project(make_settings(**(base | settings)), http, "", "", Path())
        result = check_signing_keys(project)
    return result.status, result.detail


def test_check_standby_key_published_tokens_still_hs256_fails_auth_mode_jwks(
    fake: tuple[str, FakeProject],
) -> None:
    url, state = fake

    status, detail = run(url, auth_mode="jwks")

    assert status == "fail"
    assert detail.startswith(
        "signs now: the legacy JWT secret (HS256; read from a throwaway user's sign-in); "
        f"published, not signing (standby or previously used): ES256 kid={state.standby.kid}."
    )
    assert "every user would get 401): set AUTH_MODE=rotation" in detail
    assert state.deleted == list(state.users)  # the throwaway user is gone
    assert state.secret_as_bearer == []  # the secret key went in apikey only


def test_check_standby_key_published_tokens_still_hs256_recommends_rotation(
    fake: tuple[str, FakeProject],
) -> None:
    url, _ = fake

    assert run(url)[0] == "ok"  # AUTH_MODE=rotation, the default
    status, detail = run(url, auth_mode="hs256", supabase_jwt_secret=JWT_SECRET)
    assert status == "ok"
    assert "set AUTH_MODE=rotation before rotating" in detail


def test_check_after_the_rotation_names_the_key_that_signs_and_refuses_hs256_mode(
    fake: tuple[str, FakeProject],
) -> None:
    url, state = fake
    state.signing = state.standby  # rotated in: the standby key is in use

    status, detail = run(url, auth_mode="hs256", supabase_jwt_secret=JWT_SECRET)

    assert status == "fail"
    assert detail.startswith(f"signs now: ES256 kid={state.standby.kid} (read from a throwaway")
    assert "AUTH_MODE=hs256 refuses every token signed now" in detail
    assert run(url, auth_mode="jwks")[0] == "ok"


def test_check_signing_keys_shows_no_more_than_six_characters_of_a_key(
    fake: tuple[str, FakeProject],
) -> None:
    url, _ = fake
    detail = run(url, auth_mode="jwks")[1]

    assert PUBLISHABLE[:7] not in detail and SECRET[:7] not in detail


def test_check_without_admin_access_cannot_tell_and_recommends_rotation(
    fake: tuple[str, FakeProject],
) -> None:
    url, state = fake

    status, detail = run(url, auth_mode="jwks", supabase_secret_key="sb_secret_not-this-project")

    assert status == "fail"
    assert detail.startswith("cannot tell which key signs now (no fresh token)")
    assert detail.endswith("set AUTH_MODE=rotation")
    assert state.users == {}


STANDBY = [{"kty": "EC", "alg": "ES256", "kid": "new"}]
HS256 = Signer("HS256", None, "a throwaway user's sign-in")
ES256 = Signer("ES256", "new", "a throwaway user's sign-in")
ANON_HS256 = Signer("HS256", None, "the legacy anon key", fresh=False)


@pytest.mark.parametrize(
    ("mode", "published", "signer", "status"),
    [
        ("jwks", STANDBY, HS256, "fail"),  # standby published, tokens still HS256
        ("rotation", STANDBY, HS256, "ok"),
        ("hs256", STANDBY, HS256, "ok"),
        ("jwks", [], HS256, "fail"),  # a legacy project
        ("hs256", [], HS256, "ok"),
        ("jwks", STANDBY, ES256, "ok"),  # rotated in
        ("hs256", STANDBY, ES256, "fail"),
        ("rotation", STANDBY, ES256, "ok"),
        ("rotation", [], ES256, "fail"),  # signs with a key the JWKS does not publish
        ("jwks", STANDBY, ANON_HS256, "fail"),  # an HS256 anon key says nothing new: unknown
        ("rotation", STANDBY, None, "ok"),
        ("strict", STANDBY, None, "ok"),
    ],
)
def test_assess_recommends_the_mode_that_accepts_every_valid_token(
    mode: str, published: list[dict[str, Any]], signer: Signer | None, status: str
) -> None:
    assert assess(mode, published, signer).status == status
