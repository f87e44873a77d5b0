"""The OAuth server, custom providers and passkeys, off as in GoTrue 2.189's defaults: JSON 404s
with GoTrue's codes, after the admin or user check GoTrue runs first."""

from __future__ import annotations

import httpx
import pytest

from app.local.keys import DEFAULT_PUBLISHABLE_KEY, DEFAULT_SECRET_KEY
from app.local.server import ServerThread

SERVER_OFF = ("feature_disabled", "OAuth server is disabled")
PROVIDERS_OFF = ("feature_disabled", "Custom OAuth providers are disabled")
PASSKEYS_OFF = ("passkey_disabled", "Passkeys are disabled")


@pytest.mark.parametrize(
    ("method", "path", "key", "expected"),
    [
        ("GET", "/.well-known/oauth-authorization-server", DEFAULT_PUBLISHABLE_KEY, SERVER_OFF),
        ("POST", "/oauth/clients/register", DEFAULT_PUBLISHABLE_KEY, SERVER_OFF),
        ("POST", "/oauth/token", DEFAULT_PUBLISHABLE_KEY, SERVER_OFF),
        ("GET", "/oauth/authorize", DEFAULT_PUBLISHABLE_KEY, SERVER_OFF),
        ("GET", "/oauth/userinfo", DEFAULT_PUBLISHABLE_KEY, SERVER_OFF),
        ("POST", "/oauth/authorizations/abc/consent", DEFAULT_PUBLISHABLE_KEY, SERVER_OFF),
        ("GET", "/admin/oauth/clients", DEFAULT_SECRET_KEY, SERVER_OFF),
        ("DELETE", "/admin/oauth/clients/abc", DEFAULT_SECRET_KEY, SERVER_OFF),
        ("GET", "/admin/custom-providers", DEFAULT_SECRET_KEY, PROVIDERS_OFF),
        ("POST", "/passkeys/authentication/options", DEFAULT_PUBLISHABLE_KEY, PASSKEYS_OFF),
        ("GET", "/passkeys", DEFAULT_PUBLISHABLE_KEY, PASSKEYS_OFF),
        ("DELETE", "/passkeys/abc", DEFAULT_PUBLISHABLE_KEY, PASSKEYS_OFF),
    ],
)
def test_a_disabled_feature_route_is_a_json_404_with_gotrues_code(
    stack_server: ServerThread, method: str, path: str, key: str, expected: tuple[str, str]
) -> None:
    res = httpx.request(
        method,
        f"{stack_server.url}/auth/v1{path}",
        headers={"apikey": key, "X-Supabase-Api-Version": "2024-01-01"},
    )
    assert res.status_code == 404
    assert res.headers["content-type"].startswith("application/json")
    assert (res.json()["code"], res.json()["message"]) == expected


def test_admin_oauth_clients_need_admin_credentials_first(stack_server: ServerThread) -> None:
    res = httpx.get(
        f"{stack_server.url}/auth/v1/admin/oauth/clients",
        headers={"apikey": DEFAULT_PUBLISHABLE_KEY, "X-Supabase-Api-Version": "2024-01-01"},
    )
    assert res.status_code == 403 and res.json()["code"] == "not_admin"


def test_user_oauth_grants_need_a_signed_in_user_first(stack_server: ServerThread) -> None:
    res = httpx.get(
        f"{stack_server.url}/auth/v1/user/oauth/grants",
        headers={"apikey": DEFAULT_PUBLISHABLE_KEY, "X-Supabase-Api-Version": "2024-01-01"},
    )
    assert res.status_code in (401, 403) and res.json()["code"] != "feature_disabled"


def test_an_unmatched_auth_route_is_a_json_404(stack_server: ServerThread) -> None:
    res = httpx.get(
        f"{stack_server.url}/auth/v1/no/such/route", headers={"apikey": DEFAULT_PUBLISHABLE_KEY}
    )
    assert res.status_code == 404
    assert res.headers["content-type"].startswith("application/json")
    assert res.json()["error_code"] == "not_found"
