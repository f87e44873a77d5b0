"""The OAuth 2.1 authorization code flow with `[auth.oauth_server] enabled`, as GoTrue v2.189
runs it: authorize → consent page → approve → code → `/oauth/token` (PKCE, client auth) →
refresh, userinfo and the user's grants; over real HTTP through the gateway."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import secrets
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import psycopg
import pytest

from app.local.auth.config import AuthConfig, OAuthServerConfig
from app.local.keys import DEFAULT_PUBLISHABLE_KEY, DEFAULT_SECRET_KEY
from app.local.server import ServerThread
from app.local.stack import LocalStack
from tests.support.auth_standin import StandinFactory

V2024 = {"X-Supabase-Api-Version": "2024-01-01"}
ADMIN = {"apikey": DEFAULT_SECRET_KEY, **V2024}
PUBLIC = {"apikey": DEFAULT_PUBLISHABLE_KEY, **V2024}
REDIRECT = "https://client.example.com/callback"
PASSWORD = "correct horse battery"


@dataclass
class Flow:
    server: ServerThread
    client: dict[str, Any]

    def url(self, path: str) -> str:
        return f"{self.server.url}/auth/v1{path}"

    def user_token(self, email: str | None = None) -> str:
        email = email or f"oauth-{uuid.uuid4().hex[:12]}@example.com"
        httpx.post(
            self.url("/admin/users"),
            json={"email": email, "password": PASSWORD, "email_confirm": True},
            headers=ADMIN,
        ).raise_for_status()
        res = httpx.post(
            self.url("/token?grant_type=password"),
            json={"email": email, "password": PASSWORD},
            headers=PUBLIC,
        )
        res.raise_for_status()
        token: str = res.json()["access_token"]
        return token

    def authorize(self, **params: str) -> httpx.Response:
        query = {"client_id": self.client["client_id"], "redirect_uri": REDIRECT} | params
        return httpx.get(self.url("/oauth/authorize"), params=query, headers=PUBLIC)

    def start(self, verifier: str, **params: str) -> str:
        """A pending authorization's id, from the consent page's URL."""
        res = self.authorize(
            response_type="code",
            scope="openid email",
            state="st-1",
            code_challenge=challenge_of(verifier),
            code_challenge_method="S256",
            **params,
        )
        assert res.status_code == 302, res.text
        location = urlsplit(res.headers["location"])
        assert f"{location.scheme}://{location.netloc}{location.path}" == (
            "http://127.0.0.1:3000/oauth/consent"
        )
        return parse_qs(location.query)["authorization_id"][0]

    def details(self, authorization_id: str, token: str) -> httpx.Response:
        return httpx.get(
            self.url(f"/oauth/authorizations/{authorization_id}"), headers=_bearer(token)
        )

    def decide(self, authorization_id: str, token: str, action: str) -> httpx.Response:
        return httpx.post(
            self.url(f"/oauth/authorizations/{authorization_id}/consent"),
            json={"action": action},
            headers=_bearer(token),
        )

    def code(self, verifier: str, token: str) -> str:
        authorization_id = self.start(verifier)
        assert self.details(authorization_id, token).status_code == 200
        approved = self.decide(authorization_id, token, "approve")
        assert approved.status_code == 200, approved.text
        query = parse_qs(urlsplit(approved.json()["redirect_url"]).query)
        assert query["state"] == ["st-1"]
        return query["code"][0]

    def exchange(
        self, form: dict[str, str], client: dict[str, Any] | None = None
    ) -> httpx.Response:
        client = client or self.client
        basic = f"{client['client_id']}:{client['client_secret']}".encode()
        headers = PUBLIC | {"Authorization": "Basic " + base64.b64encode(basic).decode()}
        return httpx.post(self.url("/oauth/token"), data=form, headers=headers)


def challenge_of(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _bearer(token: str) -> dict[str, str]:
    return PUBLIC | {"Authorization": f"Bearer {token}"}


def _new_client(server: ServerThread, **extra: Any) -> dict[str, Any]:
    res = httpx.post(
        f"{server.url}/auth/v1/admin/oauth/clients",
        json={"client_name": "Flow client", "redirect_uris": [REDIRECT], **extra},
        headers=ADMIN,
    )
    res.raise_for_status()
    client: dict[str, Any] = res.json()
    return client


@pytest.fixture
def flow(standin: StandinFactory, project_config: AuthConfig) -> Flow:
    config = project_config.without_rate_limits().replace(
        oauth_server=OAuthServerConfig(enabled=True)
    )
    server = standin(config)
    return Flow(server, _new_client(server))


def _verifier() -> str:
    return secrets.token_urlsafe(48)


def test_code_flow_issues_a_session_bound_to_the_client(
    flow: Flow, local_stack: LocalStack
) -> None:
    verifier, user = _verifier(), flow.user_token()
    code = flow.code(verifier, user)

    res = flow.exchange(
        {
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": verifier,
            "redirect_uri": REDIRECT,
        }
    )

    assert res.status_code == 200, res.text
    body = res.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token", "id_token"}
    claims = local_stack.keys.verify(body["access_token"])
    assert claims["amr"][0]["method"] == "oauth_provider/authorization_code"
    assert (claims["client_id"], claims["scope"]) == (flow.client["client_id"], "openid email")
    with psycopg.connect(local_stack.pg.superuser_dsn) as conn:
        row = conn.execute(
            "select oauth_client_id, scopes from auth.sessions where id = %s",
            (claims["session_id"],),
        ).fetchone()
    assert row == (uuid.UUID(flow.client["client_id"]), "openid email")


def test_the_id_token_is_for_the_client_with_the_nonce_and_the_email_scope(
    flow: Flow, local_stack: LocalStack
) -> None:
    email = f"idt-{uuid.uuid4().hex[:12]}@example.com"
    user, verifier = flow.user_token(email), _verifier()
    authorization_id = flow.start(verifier, nonce="n-0S6")
    flow.details(authorization_id, user)
    url = flow.decide(authorization_id, user, "approve").json()["redirect_url"]
    code = parse_qs(urlsplit(url).query)["code"][0]

    body = flow.exchange(
        {"grant_type": "authorization_code", "code": code, "code_verifier": verifier}
    ).json()

    claims = local_stack.keys.verify(body["id_token"])
    assert claims["aud"] == [flow.client["client_id"]] and claims["nonce"] == "n-0S6"
    assert claims["email"] == email and claims["email_verified"] is True
    assert claims["exp"] - claims["iat"] == 3600 and "name" not in claims  # no `profile`


def test_a_code_is_good_only_once(flow: Flow) -> None:
    verifier = _verifier()
    form = {"grant_type": "authorization_code", "code": flow.code(verifier, flow.user_token())}
    form["code_verifier"] = verifier

    first, again = flow.exchange(form), flow.exchange(form)

    assert first.status_code == 200
    assert again.status_code == 400
    assert again.json() == {
        "error": "invalid_grant",
        "error_description": "Invalid authorization code",
    }


def test_a_wrong_code_verifier_is_invalid_grant(flow: Flow) -> None:
    code = flow.code(_verifier(), flow.user_token())

    res = flow.exchange(
        {"grant_type": "authorization_code", "code": code, "code_verifier": "x" * 43}
    )

    assert res.status_code == 400 and res.json()["error"] == "invalid_grant"
    assert "code challenge does not match" in res.json()["error_description"]


def test_a_wrong_client_secret_is_refused_before_the_grant(flow: Flow) -> None:
    code = flow.code(_verifier(), flow.user_token())

    res = flow.exchange(
        {"grant_type": "authorization_code", "code": code},
        client={**flow.client, "client_secret": "wrong"},
    )

    assert (res.status_code, res.json()["code"]) == (400, "invalid_credentials")


def test_refresh_works_with_the_same_client_only_and_not_at_slash_token(
    flow: Flow, local_stack: LocalStack
) -> None:
    verifier = _verifier()
    code = flow.code(verifier, flow.user_token())
    tokens = flow.exchange(
        {"grant_type": "authorization_code", "code": code, "code_verifier": verifier}
    ).json()
    other = _new_client(flow.server)

    stranger = flow.exchange(
        {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}, client=other
    )
    via_token = httpx.post(
        flow.url("/token?grant_type=refresh_token"),
        json={"refresh_token": tokens["refresh_token"]},
        headers=PUBLIC,
    )
    refreshed = flow.exchange(
        {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    )

    assert stranger.status_code == 400 and stranger.json()["error"] == "invalid_client"
    assert via_token.json() == {
        "error": "invalid_client",
        "error_description": "Client authentication required for OAuth session",
    }
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["refresh_token"] != tokens["refresh_token"]
    assert local_stack.keys.verify(refreshed.json()["access_token"])["scope"] == "openid email"


def test_a_public_client_exchanges_with_its_client_id_and_pkce_alone(flow: Flow) -> None:
    public = _new_client(flow.server, token_endpoint_auth_method="none")
    flow.client = public
    verifier = _verifier()
    code = flow.code(verifier, flow.user_token())

    res = httpx.post(
        flow.url("/oauth/token"),
        json={
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": verifier,
            "client_id": public["client_id"],
        },
        headers=PUBLIC,
    )

    assert res.status_code == 200, res.text


def test_userinfo_shows_what_the_granted_scopes_allow(flow: Flow) -> None:
    email = f"info-{uuid.uuid4().hex[:12]}@example.com"
    verifier = _verifier()
    code = flow.code(verifier, flow.user_token(email))
    tokens = flow.exchange(
        {"grant_type": "authorization_code", "code": code, "code_verifier": verifier}
    ).json()

    res = httpx.get(flow.url("/oauth/userinfo"), headers=_bearer(tokens["access_token"]))

    assert res.status_code == 200
    assert res.json()["email"] == email and res.json()["email_verified"] is True
    assert "user_metadata" not in res.json()  # no `profile` scope was granted


def test_authorize_without_pkce_redirects_back_with_invalid_request(flow: Flow) -> None:
    res = flow.authorize(response_type="code", scope="email", state="s")

    assert res.status_code == 302
    query = parse_qs(urlsplit(res.headers["location"]).query)
    assert res.headers["location"].startswith(REDIRECT + "?")
    assert query == {
        "error": ["invalid_request"],
        "error_description": ["PKCE flow requires both code_challenge and code_challenge_method"],
        "state": ["s"],
    }


@pytest.mark.parametrize(
    ("params", "code", "message"),
    [
        (
            {"redirect_uri": "https://elsewhere.example.com/cb"},
            "validation_failed",
            "invalid redirect_uri",
        ),
        ({"client_id": str(uuid.uuid4())}, "oauth_client_not_found", "invalid client_id"),
        ({"client_id": ""}, "validation_failed", "client_id is required"),
    ],
)
def test_authorize_refuses_an_unknown_client_or_redirect_as_json(
    flow: Flow, params: dict[str, str], code: str, message: str
) -> None:
    res = flow.authorize(**params)

    assert res.status_code == 400
    assert (res.json()["code"], res.json()["message"]) == (code, message)


def test_deny_redirects_with_access_denied_and_the_code_is_never_issued(flow: Flow) -> None:
    user = flow.user_token()
    authorization_id = flow.start(_verifier())
    flow.details(authorization_id, user)

    denied = flow.decide(authorization_id, user, "deny")
    again = flow.decide(authorization_id, user, "approve")

    query = parse_qs(urlsplit(denied.json()["redirect_url"]).query)
    assert query["error"] == ["access_denied"] and "code" not in query
    assert (again.status_code, again.json()["code"]) == (400, "validation_failed")


def test_an_authorization_belongs_to_the_first_user_who_opens_it(flow: Flow) -> None:
    owner, stranger = flow.user_token(), flow.user_token()
    authorization_id = flow.start(_verifier())

    opened = flow.details(authorization_id, owner)
    stolen = flow.details(authorization_id, stranger)

    assert opened.status_code == 200
    assert opened.json()["client"] == {"id": flow.client["client_id"], "name": "Flow client"}
    assert opened.json()["scope"] == "openid email"
    assert (stolen.status_code, stolen.json()["code"]) == (404, "oauth_authorization_not_found")


def test_a_consented_client_is_approved_on_reading_and_revoking_ends_its_sessions(
    flow: Flow,
) -> None:
    user, verifier = flow.user_token(), _verifier()
    tokens = flow.exchange(
        {
            "grant_type": "authorization_code",
            "code": flow.code(verifier, user),
            "code_verifier": verifier,
        }
    ).json()

    again = flow.details(flow.start(_verifier()), user)
    listed = httpx.get(flow.url("/user/oauth/grants"), headers=_bearer(user))
    revoked = httpx.delete(
        flow.url("/user/oauth/grants"),
        params={"client_id": flow.client["client_id"]},
        headers=_bearer(user),
    )
    after = flow.exchange({"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})

    assert "code=" in again.json()["redirect_url"]
    assert [g["client"]["id"] for g in listed.json()] == [flow.client["client_id"]]
    assert listed.json()[0]["scopes"] == ["openid", "email"]
    assert revoked.status_code == 204
    assert after.status_code == 400 and after.json()["code"] == "refresh_token_not_found"
    assert httpx.get(flow.url("/user/oauth/grants"), headers=_bearer(user)).json() == []


def test_metadata_names_the_registration_endpoint_only_when_dynamic_registration_is_on(
    flow: Flow, standin: StandinFactory, project_config: AuthConfig
) -> None:
    dynamic = standin(
        project_config.replace(
            oauth_server=dataclasses.replace(
                OAuthServerConfig(enabled=True), allow_dynamic_registration=True
            )
        )
    )
    path = "/auth/v1/.well-known/oauth-authorization-server"

    off = httpx.get(flow.server.url + path, headers=PUBLIC)
    on = httpx.get(dynamic.url + path, headers=PUBLIC)

    assert off.status_code == 200 and "registration_endpoint" not in off.json()
    assert on.json()["registration_endpoint"].endswith("/oauth/clients/register")
    assert on.json()["token_endpoint"].endswith("/oauth/token")


def test_the_client_facing_endpoints_need_no_apikey(flow: Flow) -> None:
    verifier = _verifier()
    code = flow.code(verifier, flow.user_token())
    query = {
        "client_id": flow.client["client_id"],
        "redirect_uri": REDIRECT,
        "code_challenge": challenge_of(verifier),
        "code_challenge_method": "S256",
    }
    basic = f"{flow.client['client_id']}:{flow.client['client_secret']}".encode()

    authorize = httpx.get(flow.url("/oauth/authorize"), params=query)
    metadata = httpx.get(flow.url("/.well-known/oauth-authorization-server"))
    exchanged = httpx.post(
        flow.url("/oauth/token"),
        data={"grant_type": "authorization_code", "code": code, "code_verifier": verifier},
        headers={"Authorization": "Basic " + base64.b64encode(basic).decode()},
    )
    userinfo = httpx.get(
        flow.url("/oauth/userinfo"),
        headers={"Authorization": f"Bearer {exchanged.json()['access_token']}"},
    )

    assert authorize.status_code == 302 and "authorization_id=" in authorize.headers["location"]
    assert metadata.status_code == 200
    assert exchanged.status_code == 200, exchanged.text
    assert userinfo.status_code == 200 and "email" in userinfo.json()
