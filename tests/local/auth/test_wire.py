"""The Auth stand-in on the wire (raw HTTP): statuses, both error shapes, hostile bodies."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.local.keys import LocalKeys
from app.local.server import ServerThread
from app.local.stack import LocalStack

PASSWORD = "correct horse battery"
V2024 = {"X-Supabase-Api-Version": "2024-01-01"}


class Wire:
    """Raw calls to /auth/v1 with the anon key unless told otherwise."""

    def __init__(self, http: httpx.Client, stack: LocalStack) -> None:
        self.http = http
        self.stack = stack

    def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        content: bytes | None = None,
        bearer: str | None = None,
        key: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        apikey = key or self.stack.keys.anon_key
        sent = {"apikey": apikey} | ({"Authorization": f"Bearer {bearer}"} if bearer else {})
        if content is None and body is not None:
            content = json.dumps(body).encode()
        if content is not None:
            sent["Content-Type"] = "application/json"
        return self.http.request(
            method, f"/auth/v1{path}", content=content, headers=sent | (headers or {})
        )

    def admin(self, method: str, path: str, **kw: Any) -> httpx.Response:
        key = self.stack.keys.service_role_key
        return self.call(method, path, key=key, bearer=key, **kw)

    def sign_up(self) -> dict[str, Any]:
        return self.sign_up_with(f"wire-{uuid.uuid4().hex[:12]}@example.com")

    def sign_up_with(self, email: str) -> dict[str, Any]:
        res = self.call("POST", "/signup", body={"email": email, "password": PASSWORD})
        assert res.status_code == 200, res.text
        return dict(res.json())


@pytest.fixture
def wire(stack_server: ServerThread, local_stack: LocalStack) -> Iterator[Wire]:
    with httpx.Client(base_url=stack_server.url) as http:
        yield Wire(http, local_stack)


# --- error shapes --------------------------------------------------------------------------------
def test_error_with_2024_version_header_is_code_message_and_echoes_version(wire: Wire) -> None:
    res = wire.call(
        "POST",
        "/token?grant_type=password",
        body={"email": "nobody@example.com", "password": "whatever"},
        headers=V2024,
    )

    assert res.status_code == 400
    assert res.json() == {"code": "invalid_credentials", "message": "Invalid login credentials"}
    assert res.headers["X-Supabase-Api-Version"] == "2024-01-01"
    assert res.headers["x-sb-error-code"] == "invalid_credentials"
    assert res.headers["content-type"] == "application/json"


@pytest.mark.parametrize("version", [None, "garbage", "2023-12-31"])
def test_error_without_a_2024_version_is_the_legacy_shape(wire: Wire, version: str | None) -> None:
    headers = {"X-Supabase-Api-Version": version} if version else {}

    res = wire.call(
        "POST",
        "/token?grant_type=password",
        body={"email": "nobody@example.com", "password": "whatever"},
        headers=headers,
    )

    assert res.status_code == 400
    assert res.json() == {
        "code": 400,
        "error_code": "invalid_credentials",
        "msg": "Invalid login credentials",
    }
    assert "X-Supabase-Api-Version" not in res.headers
    assert res.headers["x-sb-error-code"] == "invalid_credentials"


def test_a_later_api_version_gets_the_2024_shape(wire: Wire) -> None:
    res = wire.call(
        "POST",
        "/token?grant_type=nonsense",
        body={},
        headers={"X-Supabase-Api-Version": "2031-05-05"},
    )

    assert res.status_code == 400
    assert res.json() == {"code": "invalid_credentials", "message": "unsupported_grant_type"}
    assert res.headers["X-Supabase-Api-Version"] == "2024-01-01"


@pytest.mark.parametrize("versioned", [True, False], ids=["2024", "legacy"])
def test_weak_password_carries_reasons_in_both_shapes(wire: Wire, versioned: bool) -> None:
    res = wire.call(
        "POST",
        "/signup",
        body={"email": "weak@example.com", "password": "123"},
        headers=V2024 if versioned else {},
    )

    body = res.json()
    assert res.status_code == 422
    assert body["weak_password"] == {"reasons": ["length"]}
    assert body["code"] == ("weak_password" if versioned else 422)
    message = body["message"] if versioned else body["msg"]
    assert message == "Password should be at least 6 characters."


@pytest.mark.parametrize(
    ("body", "status", "code", "message"),
    [
        ({"email": "a@example.com"}, 400, "validation_failed", "Signup requires a valid password"),
        # GoTrue's /signup router: neither email nor phone is an anonymous sign-in attempt.
        (
            {"password": PASSWORD},
            422,
            "anonymous_provider_disabled",
            "Anonymous sign-ins are disabled",
        ),
        (
            {"email": "not an email", "password": PASSWORD},
            400,
            "validation_failed",
            "Unable to validate email address: invalid format",
        ),
        (
            {"email": "a@example.com", "password": "x" * 73},
            400,
            "validation_failed",
            "Password cannot be longer than 72 characters",
        ),
    ],
)
def test_signup_validation_errors(
    wire: Wire, body: dict[str, Any], status: int, code: str, message: str
) -> None:
    res = wire.call("POST", "/signup", body=body, headers=V2024)

    assert res.status_code == status
    assert res.json() == {"code": code, "message": message}


def test_signup_response_is_a_session_with_the_user(wire: Wire) -> None:
    session = wire.sign_up()

    assert set(session) == {
        "access_token",
        "token_type",
        "expires_in",
        "expires_at",
        "refresh_token",
        "user",
    }
    assert session["token_type"] == "bearer"
    user = session["user"]
    assert user["aud"] == user["role"] == "authenticated"
    assert user["phone"] == ""
    assert user["is_anonymous"] is False
    assert user["created_at"].endswith("Z")
    assert user["identities"][0]["identity_data"]["sub"] == user["id"]


def test_metadata_postgres_cannot_store_is_400_not_500(wire: Wire) -> None:
    res = wire.call(
        "POST",
        "/signup",
        body={
            "email": f"{uuid.uuid4().hex}@example.com",
            "password": PASSWORD,
            "data": {"a": "\x00"},
        },
        headers=V2024,
    )

    assert res.status_code == 400
    assert res.json()["code"] == "validation_failed"


def test_refresh_grant_without_a_token_is_an_oauth_error(wire: Wire) -> None:
    res = wire.call("POST", "/token?grant_type=refresh_token", body={}, headers=V2024)

    assert res.status_code == 400
    assert res.json() == {"error": "invalid_request", "error_description": "refresh_token required"}


def test_sign_in_with_missing_email_is_validation_failed(wire: Wire) -> None:
    res = wire.call("POST", "/token?grant_type=password", body={"password": "x"}, headers=V2024)

    assert res.status_code == 400
    assert res.json() == {"code": "validation_failed", "message": "missing email or phone"}


# --- GET /user authentication --------------------------------------------------------------------
def _foreign_signature(keys: LocalKeys, user_id: str) -> str:
    other = LocalKeys.generate()
    forger = LocalKeys(kid=keys.kid, private_jwk=other.private_jwk, jwt_secret="irrelevant")
    return forger.user_access_token(user_id=user_id, issuer="x")


def test_get_user_without_bearer_header_is_401_no_authorization(wire: Wire) -> None:
    res = wire.call("GET", "/user", headers={"Authorization": "Basic abc"} | V2024)

    assert res.status_code == 401
    assert res.json() == {
        "code": "no_authorization",
        "message": "This endpoint requires a valid Bearer token",
    }


@pytest.mark.parametrize("kind", ["expired", "bad-signature", "garbage"])
def test_get_user_with_an_invalid_token_is_403_bad_jwt(
    wire: Wire, local_stack: LocalStack, kind: str
) -> None:
    user_id = wire.sign_up()["user"]["id"]
    keys = local_stack.keys
    token = {
        "expired": lambda: keys.user_access_token(
            user_id=user_id, issuer="x", now=int(time.time()) - 7200
        ),
        "bad-signature": lambda: _foreign_signature(keys, user_id),
        "garbage": lambda: "not.a.jwt",
    }[kind]()

    res = wire.call("GET", "/user", bearer=token, headers=V2024)

    assert res.status_code == 403
    assert res.json()["code"] == "bad_jwt"
    assert res.json()["message"].startswith("invalid JWT: unable to parse or verify signature")


def test_get_user_with_only_the_api_key_is_401_no_authorization(wire: Wire) -> None:
    # Kong copies a legacy JWT apikey into Authorization as-is (no `Bearer `): GoTrue finds no
    # Bearer token at all.
    res = wire.call("GET", "/user", headers=V2024)

    assert res.status_code == 401
    assert res.json() == {
        "code": "no_authorization",
        "message": "This endpoint requires a valid Bearer token",
    }


def test_get_user_with_the_anon_jwt_as_bearer_is_403_missing_sub(
    wire: Wire, local_stack: LocalStack
) -> None:
    res = wire.call("GET", "/user", bearer=local_stack.keys.anon_key, headers=V2024)

    assert res.status_code == 403
    assert res.json() == {"code": "bad_jwt", "message": "invalid claim: missing sub claim"}


def test_get_user_with_a_non_uuid_sub_is_400_bad_jwt(wire: Wire, local_stack: LocalStack) -> None:
    token = jwt.encode(
        {"sub": "abc", "role": "authenticated", "exp": int(time.time()) + 60},
        local_stack.keys.jwt_secret,
        algorithm="HS256",
    )

    res = wire.call("GET", "/user", bearer=token, headers=V2024)

    assert res.status_code == 400
    assert res.json() == {"code": "bad_jwt", "message": "invalid claim: sub claim must be a UUID"}


def test_get_user_for_an_unknown_user_is_403_user_not_found(
    wire: Wire, local_stack: LocalStack
) -> None:
    token = local_stack.keys.user_access_token(user_id=str(uuid.uuid4()), issuer="x")

    res = wire.call("GET", "/user", bearer=token, headers=V2024)

    assert res.status_code == 403
    assert res.json()["code"] == "user_not_found"


def test_get_user_returns_the_bare_user_object(wire: Wire) -> None:
    session = wire.sign_up()

    res = wire.call("GET", "/user", bearer=session["access_token"])

    assert res.status_code == 200
    assert res.json() == session["user"] | {"updated_at": res.json()["updated_at"]}


def test_logout_with_unknown_scope_is_validation_failed(wire: Wire) -> None:
    session = wire.sign_up()

    res = wire.call("POST", "/logout?scope=everywhere", bearer=session["access_token"])

    assert res.status_code == 400
    assert res.json()["error_code"] == "validation_failed"


def test_logout_is_204_with_an_empty_body(wire: Wire) -> None:
    session = wire.sign_up()

    res = wire.call("POST", "/logout?scope=local", bearer=session["access_token"])

    assert res.status_code == 204
    assert res.content == b""


def test_update_user_app_metadata_needs_an_admin(wire: Wire) -> None:
    session = wire.sign_up()

    res = wire.call(
        "PUT", "/user", bearer=session["access_token"], body={"app_metadata": {"role": "x"}}
    )

    assert res.status_code == 403
    assert res.json()["error_code"] == "not_admin"


def test_update_user_to_a_taken_email_is_email_exists(wire: Wire) -> None:
    mine, theirs = wire.sign_up(), wire.sign_up()

    res = wire.call(
        "PUT",
        "/user",
        bearer=mine["access_token"],
        body={"email": theirs["user"]["email"].upper()},
        headers=V2024,
    )

    assert res.status_code == 422
    assert res.json()["code"] == "email_exists"


# --- open routes and the gateway -----------------------------------------------------------------
def test_jwks_is_public_and_cacheable(wire: Wire, local_stack: LocalStack) -> None:
    res = wire.http.get("/auth/v1/.well-known/jwks.json")

    assert res.status_code == 200
    assert res.json() == local_stack.keys.jwks()
    assert res.headers["Cache-Control"] == "public, max-age=600"


@pytest.mark.parametrize("path", ["/health", "/settings"])
def test_health_and_settings_need_no_api_key(wire: Wire, path: str) -> None:
    res = wire.http.get(f"/auth/v1{path}")

    assert res.status_code == 200
    assert res.json()


def test_settings_report_email_signups_with_autoconfirm(wire: Wire) -> None:
    body = wire.http.get("/auth/v1/settings").json()

    assert body["external"]["email"] is True
    assert body["mailer_autoconfirm"] is True
    assert body["disable_signup"] is False


def test_signup_with_a_wrong_api_key_is_the_gateways_401(wire: Wire) -> None:
    res = wire.http.post("/auth/v1/signup", json={"email": "a@b.co"}, headers={"apikey": "wrong"})

    assert res.status_code == 401
    assert res.json()["message"] == "Invalid API key"


def test_auth_without_an_api_key_reaches_gotrue_as_the_clis_kong_sends_it(wire: Wire) -> None:
    """The CLI's Kong has no key-auth on /auth/v1 (auth-js's suite builds keyless clients)."""
    email = f"nokey-{uuid.uuid4().hex[:8]}@example.com"
    signup = wire.http.post("/auth/v1/signup", json={"email": email, "password": "pw-123456"})
    user = wire.http.get(
        "/auth/v1/user", headers={"Authorization": f"Bearer {signup.json()['access_token']}"}
    )
    no_bearer = wire.http.get("/auth/v1/user")

    assert signup.status_code == 200 and user.json()["email"] == email
    assert no_bearer.status_code == 401  # GoTrue's own answer, not the gateway's
    assert no_bearer.json()["msg"] == "This endpoint requires a valid Bearer token"


def test_unknown_route_is_404_in_gotrue_shape(wire: Wire) -> None:
    res = wire.call("GET", "/no-such-endpoint", headers=V2024)

    assert res.status_code == 404
    assert res.json()["code"] == "not_found"


# --- hostile bodies ------------------------------------------------------------------------------
UNPARSEABLE = [b"{", b"[]", b'"just a string"', b"\xff\xfe\x00", b"", b'{"email": "a@b.co"']
ROUTES = [
    ("POST", "/signup"),
    ("POST", "/token?grant_type=password"),
    ("POST", "/token?grant_type=refresh_token"),
    ("PUT", "/user"),
    ("POST", "/admin/users"),
    ("PUT", "/admin/users/{id}"),
    ("DELETE", "/admin/users/{id}"),
    ("POST", "/otp"),
    ("POST", "/magiclink"),
    ("POST", "/verify"),
    ("POST", "/recover"),
    ("POST", "/resend"),
    ("POST", "/invite"),
    ("POST", "/admin/generate_link"),
    ("POST", "/token?grant_type=pkce"),
    ("POST", "/token?grant_type=id_token"),
    ("POST", "/factors"),
]
MISTYPED = [
    ("POST", "/signup", {"email": 5, "password": PASSWORD}),
    ("POST", "/signup", {"email": "a@b.co", "password": PASSWORD, "data": ["x"]}),
    ("POST", "/token?grant_type=password", {"email": "a@b.co", "password": ["x"]}),
    ("POST", "/token?grant_type=refresh_token", {"refresh_token": {"nested": True}}),
    ("PUT", "/user", {"data": "not an object"}),
    ("PUT", "/user", {"password": 123456}),
    ("POST", "/admin/users", {"email": "a@b.co", "email_confirm": "yes"}),
    ("PUT", "/admin/users/{id}", {"user_metadata": 3}),
    ("DELETE", "/admin/users/{id}", {"should_soft_delete": "maybe"}),
    ("POST", "/otp", {"email": 5}),
    ("POST", "/otp", {"email": "a@b.co", "create_user": "yes"}),
    ("POST", "/verify", {"type": ["email"], "token": "1"}),
    ("POST", "/recover", {"email": {"a": 1}}),
    ("POST", "/resend", {"type": "signup", "email": 1}),
    ("POST", "/invite", {"email": "a@b.co", "data": "x"}),
    ("POST", "/admin/generate_link", {"type": 1, "email": "a@b.co"}),
    ("POST", "/token?grant_type=pkce", {"auth_code": 1, "code_verifier": "x"}),
]


@pytest.fixture(scope="module")
def victim(stack_server: ServerThread, local_stack: LocalStack) -> dict[str, Any]:
    """One signed-up user whose token and id the hostile-body tests aim at."""
    with httpx.Client(base_url=stack_server.url) as http:
        return Wire(http, local_stack).sign_up()


def _send(wire: Wire, victim: dict[str, Any], method: str, path: str, raw: bytes) -> httpx.Response:
    if method == "DELETE":  # aim deletes at a throwaway user, never at the victim
        made = wire.admin("POST", "/admin/users", body={"email": f"{uuid.uuid4().hex}@x.io"})
        path = path.replace("{id}", made.json()["id"])
    path = path.replace("{id}", victim["user"]["id"])
    if path.startswith(("/admin", "/invite")):
        return wire.admin(method, path, content=raw)
    return wire.call(method, path, content=raw, bearer=victim["access_token"])


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize("raw", UNPARSEABLE)
def test_unparseable_bodies_are_400_bad_json(
    wire: Wire, victim: dict[str, Any], method: str, path: str, raw: bytes
) -> None:
    res = _send(wire, victim, method, path, raw)

    if method == "DELETE" and raw == b"":  # GoTrue reads an empty DELETE body as defaults
        assert res.status_code == 200
        return
    assert res.status_code == 400, res.text
    assert res.json()["error_code"] == "bad_json"
    assert res.json()["msg"].startswith("Could not parse request body as JSON")


@pytest.mark.parametrize(("method", "path", "body"), MISTYPED)
def test_mistyped_fields_are_400_bad_json(
    wire: Wire, victim: dict[str, Any], method: str, path: str, body: dict[str, Any]
) -> None:
    res = _send(wire, victim, method, path, json.dumps(body).encode())

    assert res.status_code == 400, res.text
    assert res.json()["error_code"] == "bad_json"


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_huge_bodies_are_refused_413(
    wire: Wire, victim: dict[str, Any], method: str, path: str
) -> None:
    raw = b'{"email": "' + b"a" * 600_000 + b'"}'

    res = _send(wire, victim, method, path, raw)

    assert res.status_code == 413
    assert res.json()["error_code"] == "request_too_large"


def _nested(inner: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    return st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    _nested,
    max_leaves=12,
)
BODY_KEYS = [
    "email",
    "password",
    "data",
    "refresh_token",
    "user_metadata",
    "app_metadata",
    "id",
    "ban_duration",
    "email_confirm",
    "should_soft_delete",
    "password_hash",
    "phone",
    "type",
    "token",
    "token_hash",
    "create_user",
    "code_challenge",
    "code_challenge_method",
    "auth_code",
    "code_verifier",
    "new_email",
    "nonce",
    "factor_type",
    "provider",
    "id_token",
    "redirect_to",
]
BODIES = JSON | st.dictionaries(st.sampled_from(BODY_KEYS), JSON, max_size=5)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=BODIES, route=st.sampled_from(ROUTES))
def test_arbitrary_json_bodies_never_cause_a_server_error(
    wire: Wire, victim: dict[str, Any], body: Any, route: tuple[str, str]
) -> None:
    method, path = route

    res = _send(wire, victim, method, path, json.dumps(body).encode())

    assert res.status_code < 500, res.text
    assert "Traceback" not in res.text
    assert res.headers["content-type"] == "application/json"


VERIFY_TYPES = ["magiclink", "recovery", "signup", "email", "invite", "email_change", "sms"]
ATTEMPTS = st.lists(
    st.tuples(st.sampled_from(["hash", "code", "link"]), st.sampled_from(VERIFY_TYPES)),
    min_size=1,
    max_size=6,
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(attempts=ATTEMPTS, link_type=st.sampled_from(["magiclink", "recovery", "invite"]))
def test_a_mailed_token_is_never_accepted_twice(
    wire: Wire, attempts: list[tuple[str, str]], link_type: str
) -> None:
    """However a one-time token is replayed (hash, code or link; any type), at most one try
    signs in, and none is a server error."""
    email = f"once-{uuid.uuid4().hex[:12]}@example.com"
    if link_type != "invite":
        wire.sign_up_with(email)
    made = wire.admin("POST", "/admin/generate_link", body={"type": link_type, "email": email})
    assert made.status_code == 200, made.text
    link = made.json()
    accepted = 0
    for how, vtype in attempts:
        if how == "hash":
            res = wire.call(
                "POST", "/verify", body={"token_hash": link["hashed_token"], "type": vtype}
            )
            ok = res.status_code == 200
        elif how == "code":
            body = {"email": email, "token": link["email_otp"], "type": vtype}
            res = wire.call("POST", "/verify", body=body)
            ok = res.status_code == 200
        else:
            url = link["action_link"].replace(f"type={link_type}", f"type={vtype}")
            res = wire.http.get(url, follow_redirects=False)
            ok = res.status_code == 303 and "access_token=" in res.headers.get("location", "")
        assert res.status_code < 500, res.text
        accepted += ok
    assert accepted <= 1


OPEN_ROUTES = ["/verify", "/authorize", "/callback"]
QUERY = st.dictionaries(
    st.sampled_from(["type", "token", "redirect_to", "provider", "state", "code", "error"]),
    st.text(max_size=40),
    max_size=4,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(route=st.sampled_from(OPEN_ROUTES), query=QUERY, with_key=st.booleans())
def test_open_routes_never_cause_a_server_error(
    wire: Wire, route: str, query: dict[str, str], with_key: bool
) -> None:
    headers = {"apikey": wire.stack.keys.anon_key} if with_key else {}

    res = wire.http.get(f"/auth/v1{route}", params=query, headers=headers, follow_redirects=False)

    assert res.status_code < 500, res.text
    assert "Traceback" not in res.text
