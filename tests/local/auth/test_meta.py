"""The Auth stand-in's discovery routes and GoTrue 2.195's ban check on access tokens."""

from __future__ import annotations

import uuid

import httpx
import pytest

from app.local.keys import DEFAULT_PUBLISHABLE_KEY, DEFAULT_SECRET_KEY
from app.local.server import ServerThread

PASSWORD = "correct horse battery"


def test_openid_configuration_is_served_as_gotrue_serves_it(stack_server: ServerThread) -> None:
    res = httpx.get(f"{stack_server.url}/auth/v1/.well-known/openid-configuration")

    assert res.status_code == 200
    assert res.headers["cache-control"] == "public, max-age=600"
    body = res.json()
    issuer = f"{stack_server.url}/auth/v1"
    assert body["issuer"] == issuer
    assert body["jwks_uri"] == f"{issuer}/.well-known/jwks.json"
    assert body["id_token_signing_alg_values_supported"] == ["RS256", "HS256", "ES256"]
    assert "registration_endpoint" not in body  # the OAuth server is off


def test_jwks_is_cacheable_for_ten_minutes_and_public_only(stack_server: ServerThread) -> None:
    res = httpx.get(f"{stack_server.url}/auth/v1/.well-known/jwks.json")
    assert res.headers["cache-control"] == "public, max-age=600"
    assert all("d" not in key for key in res.json()["keys"])


@pytest.mark.anyio
async def test_a_banned_users_access_token_is_refused_403_user_banned(
    stack_server: ServerThread,
) -> None:
    async with httpx.AsyncClient(base_url=f"{stack_server.url}/auth/v1", timeout=30) as http:
        email = f"ban-{uuid.uuid4().hex[:10]}@example.com"
        signed = await http.post(
            "/signup",
            json={"email": email, "password": PASSWORD},
            headers={"apikey": DEFAULT_PUBLISHABLE_KEY},
        )
        token = signed.json()["access_token"]
        user_headers = {"apikey": DEFAULT_PUBLISHABLE_KEY, "Authorization": f"Bearer {token}"}
        before = await http.get("/user", headers=user_headers)
        banned = await http.put(
            f"/admin/users/{signed.json()['user']['id']}",
            json={"ban_duration": "24h"},
            headers={"apikey": DEFAULT_SECRET_KEY},
        )
        after = await http.get(
            "/user", headers=user_headers | {"X-Supabase-Api-Version": "2024-01-01"}
        )

    assert before.status_code == 200 and banned.status_code == 200
    assert after.status_code == 403
    assert after.json() == {"code": "user_banned", "message": "User is banned"}
