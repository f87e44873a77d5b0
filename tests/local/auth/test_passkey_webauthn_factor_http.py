"""A WebAuthn MFA factor over HTTP: enrolled, challenged to `create`, verified with a software
key (the session becomes aal2 with `mfa/webauthn`), then challenged to `request` and signed."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import httpx

from app.local.auth.config import (
    AuthConfig,
    FactorSwitches,
    MfaConfig,
    PasskeyConfig,
    WebAuthnConfig,
)
from app.local.keys import DEFAULT_PUBLISHABLE_KEY
from app.local.server import ServerThread
from tests.support.auth_standin import StandinFactory
from tests.support.webauthn_authenticator import SoftwareAuthenticator

RP_ID, ORIGIN = "localhost", "http://localhost:5173"
ON = FactorSwitches(enroll_enabled=True, verify_enabled=True)


def _claims(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return claims


def _call(server: ServerThread, path: str, token: str, body: Any) -> httpx.Response:
    headers = {
        "apikey": DEFAULT_PUBLISHABLE_KEY,
        "Authorization": f"Bearer {token}",
        "X-Supabase-Api-Version": "2024-01-01",
    }
    return httpx.post(f"{server.url}/auth/v1{path}", json=body, headers=headers)


def test_a_webauthn_factor_verifies_with_its_key_and_raises_the_session_to_aal2(
    standin: StandinFactory, project_config: AuthConfig
) -> None:
    server = standin(
        project_config.without_rate_limits().replace(
            mfa=MfaConfig(web_authn=ON),
            webauthn=WebAuthnConfig(rp_id=RP_ID, rp_origins=(ORIGIN,)),
        )
    )
    email = f"wa-{uuid.uuid4().hex[:10]}@example.com"
    anon = {"apikey": DEFAULT_PUBLISHABLE_KEY}
    signup = httpx.post(
        f"{server.url}/auth/v1/signup", json={"email": email, "password": "pw-123456"}, headers=anon
    )
    token = signup.json()["access_token"]
    factor = _call(server, "/factors", token, {"factor_type": "webauthn"}).json()
    key = SoftwareAuthenticator(RP_ID, ORIGIN)

    created = _call(server, f"/factors/{factor['id']}/challenge", token, {}).json()
    assert created["webauthn"]["type"] == "create"
    response = key.create(created["webauthn"]["credential_options"]["publicKey"])
    verified = _call(
        server,
        f"/factors/{factor['id']}/verify",
        token,
        {
            "challenge_id": created["id"],
            "webauthn": {"type": "create", "credential_response": response},
        },
    )
    assert verified.status_code == 200, verified.text
    token = verified.json()["access_token"]
    assert _claims(token)["aal"] == "aal2"
    assert _claims(token)["amr"][0]["method"] == "mfa/webauthn"

    requested = _call(server, f"/factors/{factor['id']}/challenge", token, {}).json()
    assert requested["webauthn"]["type"] == "request"
    options = requested["webauthn"]["credential_options"]["publicKey"]
    stranger = SoftwareAuthenticator(RP_ID, ORIGIN)
    stranger.user_handle = key.user_handle
    refused = _call(
        server,
        f"/factors/{factor['id']}/verify",
        token,
        {
            "challenge_id": requested["id"],
            "webauthn": {"type": "request", "credential_response": stranger.get(options)},
        },
    )
    signed = _call(
        server,
        f"/factors/{factor['id']}/verify",
        token,
        {
            "challenge_id": requested["id"],
            "webauthn": {"type": "request", "credential_response": key.get(options)},
        },
    )

    assert (refused.status_code, refused.json()["code"]) == (400, "webauthn_verification_failed")
    assert signed.status_code == 200, signed.text


def test_with_a_verified_factor_only_an_aal2_session_registers_a_passkey(
    standin: StandinFactory, project_config: AuthConfig
) -> None:
    server = standin(
        project_config.without_rate_limits().replace(
            mfa=MfaConfig(web_authn=ON),
            passkey=PasskeyConfig(enabled=True),
            webauthn=WebAuthnConfig(rp_id=RP_ID, rp_origins=(ORIGIN,)),
        )
    )
    email, password = f"wa-{uuid.uuid4().hex[:10]}@example.com", "pw-123456"
    anon = {"apikey": DEFAULT_PUBLISHABLE_KEY}
    token = httpx.post(
        f"{server.url}/auth/v1/signup", json={"email": email, "password": password}, headers=anon
    ).json()["access_token"]
    factor = _call(server, "/factors", token, {"factor_type": "webauthn"}).json()
    created = _call(server, f"/factors/{factor['id']}/challenge", token, {}).json()
    response = SoftwareAuthenticator(RP_ID, ORIGIN).create(
        created["webauthn"]["credential_options"]["publicKey"]
    )
    aal2 = _call(
        server,
        f"/factors/{factor['id']}/verify",
        token,
        {
            "challenge_id": created["id"],
            "webauthn": {"type": "create", "credential_response": response},
        },
    ).json()["access_token"]
    aal1 = httpx.post(
        f"{server.url}/auth/v1/token?grant_type=password",
        json={"email": email, "password": password},
        headers=anon,
    ).json()["access_token"]

    refused = _call(server, "/passkeys/registration/options", aal1, None)
    allowed = _call(server, "/passkeys/registration/options", aal2, None)

    assert (refused.status_code, refused.json()["code"]) == (403, "insufficient_aal")
    assert allowed.status_code == 200
