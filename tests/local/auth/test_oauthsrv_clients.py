"""OAuth 2.1 client registration with `[auth.oauth_server] enabled`: GoTrue v2.189's admin API
(`/admin/oauth/clients…`) and dynamic registration, over real HTTP through the gateway."""

from __future__ import annotations

import dataclasses
import hashlib
from base64 import urlsafe_b64encode
from typing import Any

import httpx
import psycopg
import pytest

from app.local.auth.config import AuthConfig, OAuthServerConfig, parse_auth_config
from app.local.keys import DEFAULT_PUBLISHABLE_KEY, DEFAULT_SECRET_KEY
from app.local.server import ServerThread
from app.local.stack import LocalStack
from tests.support.auth_standin import StandinFactory

V2024 = {"X-Supabase-Api-Version": "2024-01-01"}
ADMIN = {"apikey": DEFAULT_SECRET_KEY, **V2024}
PUBLIC = {"apikey": DEFAULT_PUBLISHABLE_KEY, **V2024}
SECRET_POST = "client_secret_post"
MINIMAL = {"client_name": "Minimal", "redirect_uris": ["https://example.com/callback"]}


def _on(config: AuthConfig, **changes: Any) -> AuthConfig:
    return config.without_rate_limits().replace(
        oauth_server=dataclasses.replace(OAuthServerConfig(enabled=True), **changes)
    )


@pytest.fixture
def server(standin: StandinFactory, project_config: AuthConfig) -> ServerThread:
    return standin(_on(project_config))


def _url(server: ServerThread, path: str) -> str:
    return f"{server.url}/auth/v1{path}"


def _create(server: ServerThread, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(_url(server, "/admin/oauth/clients"), json=body, headers=ADMIN)


def test_config_reads_the_oauth_server_section_with_the_clis_defaults() -> None:
    on = parse_auth_config(
        {"auth": {"oauth_server": {"enabled": True, "allow_dynamic_registration": True}}}
    )

    assert parse_auth_config({}).oauth_server == OAuthServerConfig(
        enabled=False, authorization_url_path="/oauth/consent", allow_dynamic_registration=False
    )
    assert on.oauth_server.enabled and on.oauth_server.allow_dynamic_registration


def test_admin_create_returns_the_secret_once_and_get_never_does(server: ServerThread) -> None:
    created = _create(server, MINIMAL)
    client_id = created.json()["client_id"]
    got = httpx.get(_url(server, f"/admin/oauth/clients/{client_id}"), headers=ADMIN)

    assert created.status_code == 201
    body = created.json()
    assert body["client_secret"] and body["client_type"] == "confidential"
    assert body["token_endpoint_auth_method"] == "client_secret_basic"
    assert body["grant_types"] == ["authorization_code", "refresh_token"]
    assert body["response_types"] == ["code"] and body["registration_type"] == "manual"
    assert body["redirect_uris"] == MINIMAL["redirect_uris"]
    assert got.status_code == 200 and "client_secret" not in got.json()
    assert got.json()["client_name"] == "Minimal" and got.json()["client_id"] == client_id


def test_admin_create_stores_only_the_secrets_sha256(
    server: ServerThread, local_stack: LocalStack
) -> None:
    body = _create(server, MINIMAL).json()

    with psycopg.connect(local_stack.pg.superuser_dsn) as conn:
        row = conn.execute(
            "select client_secret_hash from auth.oauth_clients where id = %s",
            (body["client_id"],),
        ).fetchone()
    digest = hashlib.sha256(body["client_secret"].encode()).digest()
    assert row is not None and row[0] == urlsafe_b64encode(digest).rstrip(b"=").decode()


def test_admin_create_public_client_has_no_secret_and_method_none(server: ServerThread) -> None:
    res = _create(server, {**MINIMAL, "token_endpoint_auth_method": "none"})

    assert res.status_code == 201
    assert res.json()["client_type"] == "public" and "client_secret" not in res.json()
    assert res.json()["token_endpoint_auth_method"] == "none"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"client_name": "x", "redirect_uris": []}, "400: redirect_uris is required"),
        ({"client_name": "x"}, "400: redirect_uris is required"),
        (
            {"redirect_uris": ["http://example.com/cb"]},
            "400: invalid redirect_uri 'http://example.com/cb': HTTP scheme only allowed for"
            " localhost",
        ),
        (
            {"redirect_uris": ["https://example.com/cb#frag"]},
            "400: invalid redirect_uri 'https://example.com/cb#frag': fragment not allowed in"
            " redirect URI",
        ),
        (
            {"redirect_uris": ["javascript://x/alert"]},
            "400: invalid redirect_uri 'javascript://x/alert': scheme 'javascript' is not allowed"
            " for security reasons",
        ),
        (
            {**MINIMAL, "grant_types": ["password"]},
            "400: grant_types must only contain 'authorization_code' and/or 'refresh_token'",
        ),
        (
            {**MINIMAL, "client_type": "public", "token_endpoint_auth_method": SECRET_POST},
            "400: client_type 'public' is inconsistent with token_endpoint_auth_method"
            " 'client_secret_post' (expected client_type 'confidential')",
        ),
        ({**MINIMAL, "logo_uri": "not a url"}, "400: logo_uri must be a valid URL"),
    ],
)
def test_admin_create_refuses_what_gotrue_refuses(
    server: ServerThread, body: dict[str, Any], message: str
) -> None:
    res = _create(server, body)

    assert res.status_code == 400
    assert (res.json()["code"], res.json()["message"]) == ("validation_failed", message)


def test_admin_create_with_a_body_that_is_not_json_is_bad_json(server: ServerThread) -> None:
    res = httpx.post(_url(server, "/admin/oauth/clients"), content=b"{", headers=ADMIN)

    assert res.status_code == 400 and res.json()["code"] == "bad_json"


def test_admin_list_has_every_live_client_newest_first(server: ServerThread) -> None:
    ids = [_create(server, MINIMAL).json()["client_id"] for _ in range(3)]
    httpx.delete(_url(server, f"/admin/oauth/clients/{ids[0]}"), headers=ADMIN)

    listed = httpx.get(_url(server, "/admin/oauth/clients"), headers=ADMIN)

    assert listed.status_code == 200
    listed_ids = [c["client_id"] for c in listed.json()["clients"]]
    assert ids[0] not in listed_ids
    assert listed_ids.index(ids[2]) < listed_ids.index(ids[1])


def test_admin_update_changes_only_the_given_fields(server: ServerThread) -> None:
    client_id = _create(server, MINIMAL).json()["client_id"]
    url = _url(server, f"/admin/oauth/clients/{client_id}")

    updated = httpx.put(url, json={"logo_uri": "https://example.com/logo.png"}, headers=ADMIN)
    empty = httpx.put(url, json={"client_name": None}, headers=ADMIN)
    wrong = httpx.put(url, json={"token_endpoint_auth_method": "none"}, headers=ADMIN)

    assert updated.status_code == 200
    assert updated.json()["logo_uri"] == "https://example.com/logo.png"
    assert updated.json()["client_name"] == "Minimal" and "client_secret" not in updated.json()
    assert (empty.status_code, empty.json()["message"]) == (400, "No fields provided for update")
    assert wrong.status_code == 400
    assert wrong.json()["message"] == (
        "token_endpoint_auth_method 'none' is not valid for client_type 'confidential';"
        " valid methods: [client_secret_basic client_secret_post]"
    )


def test_admin_delete_is_204_and_the_client_is_then_not_found(server: ServerThread) -> None:
    client_id = _create(server, MINIMAL).json()["client_id"]
    url = _url(server, f"/admin/oauth/clients/{client_id}")

    deleted = httpx.delete(url, headers=ADMIN)
    after = httpx.get(url, headers=ADMIN)

    assert deleted.status_code == 204 and deleted.content == b""
    assert after.status_code == 404 and after.json()["code"] == "oauth_client_not_found"


@pytest.mark.parametrize(
    ("client_id", "status", "code"),
    [
        ("00000000-0000-0000-0000-000000000000", 404, "oauth_client_not_found"),
        ("not-a-uuid", 400, "validation_failed"),
    ],
)
def test_admin_get_of_an_unknown_client_is_gotrues_error(
    server: ServerThread, client_id: str, status: int, code: str
) -> None:
    res = httpx.get(_url(server, f"/admin/oauth/clients/{client_id}"), headers=ADMIN)

    assert (res.status_code, res.json()["code"]) == (status, code)


def test_regenerate_secret_replaces_the_old_one(server: ServerThread) -> None:
    created = _create(server, MINIMAL).json()
    url = _url(server, f"/admin/oauth/clients/{created['client_id']}/regenerate_secret")

    regenerated = httpx.post(url, headers=ADMIN)

    assert regenerated.status_code == 200
    assert regenerated.json()["client_secret"] not in ("", created["client_secret"])


def test_regenerate_secret_of_a_public_client_is_refused(server: ServerThread) -> None:
    created = _create(server, {**MINIMAL, "client_type": "public"}).json()
    url = _url(server, f"/admin/oauth/clients/{created['client_id']}/regenerate_secret")

    res = httpx.post(url, headers=ADMIN)

    assert res.status_code == 400
    assert res.json()["message"] == "Cannot regenerate secret for public client"


def test_admin_oauth_clients_still_need_admin_credentials(server: ServerThread) -> None:
    res = httpx.get(_url(server, "/admin/oauth/clients"), headers=PUBLIC)

    assert (res.status_code, res.json()["code"]) == (403, "not_admin")


def test_dynamic_registration_is_refused_unless_allowed(server: ServerThread) -> None:
    res = httpx.post(_url(server, "/oauth/clients/register"), json=MINIMAL, headers=PUBLIC)

    assert res.status_code == 403
    assert res.json()["code"] == "oauth_dynamic_client_registration_disabled"


def test_dynamic_registration_when_allowed_creates_a_dynamic_client(
    standin: StandinFactory, project_config: AuthConfig
) -> None:
    server = standin(_on(project_config, allow_dynamic_registration=True))

    res = httpx.post(_url(server, "/oauth/clients/register"), json=MINIMAL, headers=PUBLIC)

    assert res.status_code == 201
    assert res.json()["registration_type"] == "dynamic" and res.json()["client_secret"]


def test_with_the_server_off_admin_oauth_clients_stay_feature_disabled(
    standin: StandinFactory, project_config: AuthConfig
) -> None:
    server = standin(project_config.without_rate_limits())

    res = _create(server, MINIMAL)

    assert (res.status_code, res.json()["code"]) == (404, "feature_disabled")
