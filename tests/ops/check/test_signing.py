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
ACCESS_TOKEN = "sbp_personal-access-token-for-the-check-tests"
REF = "abcdefghijklmnopqrst"


@dataclass
class FakeProject:
    standby: SigningKey = field(default_factory=new_key)
    signing: SigningKey | None = None  # None: the legacy HS256 secret signs
    users: dict[str, str] = field(default_factory=dict)  # id -> email
    deleted: list[str] = field(default_factory=list)
    secret_as_bearer: list[str] = field(default_factory=list)  # paths that got Bearer sb_secret_
    extra: list[SigningKey] = field(default_factory=list)  # published after the standby key
    # The Management API's view: kid -> status, and the legacy HS256 secret's status.
    statuses: dict[str, str] = field(default_factory=dict)
    legacy_status: str = "in_use"


@pytest.fixture(scope="module")
def fake_server() -> Iterator[tuple[str, FakeProject]]:
    state = FakeProject()

    def admin(request: Request) -> bool:
        if (request.headers.get("authorization") or "").startswith("Bearer sb_"):
            state.secret_as_bearer.append(request.url.path)
        return request.headers.get("apikey") == SECRET

    async def jwks(request: Request) -> Response:
        return JSONResponse({"keys": [k.public_jwk() for k in [state.standby, *state.extra]]})

    async def signing_keys(request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {ACCESS_TOKEN}":
            return JSONResponse({"message": "Unauthorized"}, 401)
        assert request.path_params["ref"] == REF
        listed = [
            {"id": str(uuid.uuid4()), "algorithm": "HS256", "status": state.legacy_status,
             "public_jwk": None, "created_at": "2021-01-01T00:00:00Z"},
        ] + [
            {"id": kid, "algorithm": "ES256", "status": status,
             "public_jwk": {"kid": kid, "kty": "EC"}, "created_at": "2026-12-01T00:00:00Z"}
            for kid, status in state.statuses.items()
        ]  # fmt: skip
        return JSONResponse({"keys": listed})

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
            Route("/v1/projects/{ref}/config/auth/signing-keys", signing_keys),
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


def test_check_without_admin_access_reads_the_legacy_anon_keys_header(
    fake: tuple[str, FakeProject],
) -> None:
    """As the CLI does with signing_keys_path: the anon key is signed by the key in use."""
    url, state = fake
    anon = state.standby.sign({"role": "anon", "iss": "supabase-demo"})

    status, detail = run(
        url,
        auth_mode="jwks",
        supabase_secret_key="sb_secret_not-this-project",
        supabase_anon_key=anon,
    )

    assert status == "ok"
    assert detail.startswith(f"signs now: ES256 kid={state.standby.kid} (read from the legacy anon")


def with_management_api(url: str, **settings: Any) -> tuple[str, str]:
    return run(
        url,
        supabase_access_token=ACCESS_TOKEN,
        supabase_project_ref=REF,
        supabase_management_api_url=url,
        **settings,
    )


def test_check_with_the_management_api_names_the_standby_key_and_the_legacy_secret_in_use(
    fake: tuple[str, FakeProject],
) -> None:
    url, state = fake
    state.statuses = {state.standby.kid: "standby"}

    status, detail = with_management_api(url, auth_mode="jwks")

    assert status == "fail"  # tokens are still HS256: jwks would refuse them all
    assert f"published, not signing: ES256 kid={state.standby.kid} standby." in detail
    assert detail.endswith("(Management API: the legacy JWT secret is in use)")


def test_check_with_the_management_api_tells_standby_from_previously_used(
    fake: tuple[str, FakeProject],
) -> None:
    url, state = fake
    current, old = new_key(), new_key()
    state.signing, state.extra = current, [current, old]
    state.statuses = {
        state.standby.kid: "standby",
        current.kid: "in_use",
        old.kid: "previously_used",
    }
    state.legacy_status = "previously_used"

    status, detail = with_management_api(url, auth_mode="jwks")

    assert status == "ok"
    assert detail.startswith(f"signs now: ES256 kid={current.kid}")
    assert f"ES256 kid={state.standby.kid} standby, ES256 kid={old.kid} previously used" in detail
    assert "AUTH_MODE=jwks refuses HS256 tokens issued before the rotation" in detail
    assert detail.endswith("the legacy JWT secret is previously used)")


def test_check_with_the_management_api_once_the_legacy_secret_is_revoked_jwks_is_enough(
    fake: tuple[str, FakeProject],
) -> None:
    url, state = fake
    state.signing = state.standby
    state.statuses = {state.standby.kid: "in_use"}
    state.legacy_status = "revoked"

    status, detail = with_management_api(url, auth_mode="jwks")

    assert status == "ok"
    assert "AUTH_MODE=jwks accepts every valid token" in detail
    assert "refuses HS256" not in detail


def test_check_with_a_wrong_access_token_fails_and_says_which_setting(
    fake: tuple[str, FakeProject],
) -> None:
    url, _ = fake

    status, detail = run(
        url,
        supabase_access_token="sbp_wrong",
        supabase_project_ref=REF,
        supabase_management_api_url=url,
    )

    assert status == "fail"
    assert "answered HTTP 401" in detail and "SUPABASE_ACCESS_TOKEN" in detail
    assert "sbp_wrong" not in detail


def test_check_with_an_access_token_but_no_ref_asks_for_supabase_project_ref(
    fake: tuple[str, FakeProject],
) -> None:
    url, _ = fake  # http://127.0.0.1:<port>: no ref in the URL

    status, detail = run(url, supabase_access_token=ACCESS_TOKEN)

    assert status == "fail" and "SUPABASE_PROJECT_REF" in detail


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
