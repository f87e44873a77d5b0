"""Passkeys as GoTrue 2.189 serves them (`[auth.passkey]`, `[auth.webauthn]`): real WebAuthn
ceremonies from a software authenticator, over HTTP, against a stand-in with passkeys on."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from app.local.auth.config import (
    AuthConfig,
    PasskeyConfig,
    WebAuthnConfig,
    parse_auth_config,
)
from app.local.keys import DEFAULT_PUBLISHABLE_KEY, DEFAULT_SECRET_KEY
from app.local.server import ServerThread
from tests.support.auth_standin import StandinFactory
from tests.support.webauthn_authenticator import SoftwareAuthenticator, b64url, from_b64url

RP_ID = "localhost"
ORIGIN = "http://localhost:5173"
WEBAUTHN = WebAuthnConfig(rp_display_name="tests", rp_id=RP_ID, rp_origins=(ORIGIN,))
V2024 = {"X-Supabase-Api-Version": "2024-01-01"}


def _config(project_config: AuthConfig, **webauthn: Any) -> AuthConfig:
    return project_config.without_rate_limits().replace(
        enable_anonymous_sign_ins=True,
        passkey=PasskeyConfig(enabled=True),
        webauthn=WebAuthnConfig(**{**WEBAUTHN.__dict__, **webauthn}),
    )


@pytest.fixture
def server(standin: StandinFactory, project_config: AuthConfig) -> ServerThread:
    return standin(_config(project_config))


class Api:
    """One caller of `/auth/v1`: the publishable key, and a user's token once signed in."""

    def __init__(self, server: ServerThread, token: str | None = None) -> None:
        self.base = f"{server.url}/auth/v1"
        self.token = token

    def call(self, method: str, path: str, body: Any = None) -> httpx.Response:
        headers = {"apikey": DEFAULT_PUBLISHABLE_KEY, **V2024}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return httpx.request(method, self.base + path, json=body, headers=headers)


def _admin(server: ServerThread, method: str, path: str) -> httpx.Response:
    headers = {"apikey": DEFAULT_SECRET_KEY, "Authorization": f"Bearer {DEFAULT_SECRET_KEY}"}
    return httpx.request(method, f"{server.url}/auth/v1{path}", headers={**headers, **V2024})


def _sign_up(server: ServerThread) -> tuple[Api, str]:
    res = Api(server).call(
        "POST",
        "/signup",
        {"email": f"pk-{uuid.uuid4().hex[:12]}@example.com", "password": "pw-123456"},
    )
    assert res.status_code == 200, res.text
    return Api(server, res.json()["access_token"]), res.json()["user"]["id"]


def _register(owner: Api, authenticator: SoftwareAuthenticator) -> dict[str, Any]:
    options = owner.call("POST", "/passkeys/registration/options").json()
    credential = authenticator.create(options["options"])
    res = owner.call(
        "POST",
        "/passkeys/registration/verify",
        {"challenge_id": options["challenge_id"], "credential": credential},
    )
    assert res.status_code == 200, res.text
    created: dict[str, Any] = res.json()
    return created


def _sign_in(server: ServerThread, authenticator: SoftwareAuthenticator) -> httpx.Response:
    api = Api(server)
    options = api.call("POST", "/passkeys/authentication/options").json()
    return api.call(
        "POST",
        "/passkeys/authentication/verify",
        {
            "challenge_id": options["challenge_id"],
            "credential": authenticator.get(options["options"]),
        },
    )


def _code(res: httpx.Response) -> tuple[int, str]:
    return res.status_code, res.json()["code"]


def test_passkey_settings_are_read_from_the_auth_passkey_and_webauthn_sections() -> None:
    config = parse_auth_config(
        {
            "auth": {
                "passkey": {"enabled": True},
                "webauthn": {
                    "rp_id": "example.com",
                    "rp_display_name": "Example",
                    "rp_origins": ["https://example.com"],
                },
            }
        }
    )
    assert config.passkey == PasskeyConfig(enabled=True, max_passkeys_per_user=10)
    assert (config.webauthn.rp_id, config.webauthn.rp_origins) == (
        "example.com",
        ("https://example.com",),
    )
    assert parse_auth_config({}).passkey.enabled is False


def test_registration_options_offer_a_discoverable_es256_credential_for_the_user(
    server: ServerThread,
) -> None:
    owner, user_id = _sign_up(server)

    res = owner.call("POST", "/passkeys/registration/options")

    assert res.status_code == 200, res.text
    body = res.json()
    uuid.UUID(body["challenge_id"])
    options = body["options"]
    assert options["rp"] == {"name": "tests", "id": RP_ID}
    assert from_b64url(options["user"]["id"]) == user_id.encode()  # GoTrue's WebAuthnID
    assert {"type": "public-key", "alg": -7} in options["pubKeyCredParams"]
    assert options["authenticatorSelection"]["residentKey"] == "required"


def test_a_registered_passkey_signs_in_without_a_password_with_amr_passkey(
    server: ServerThread,
) -> None:
    owner, user_id = _sign_up(server)
    authenticator = SoftwareAuthenticator(RP_ID, ORIGIN)
    created = _register(owner, authenticator)
    assert created["friendly_name"] == "Passkey" and "created_at" in created

    res = _sign_in(server, authenticator)

    assert res.status_code == 200, res.text
    session = res.json()
    assert session["user"]["id"] == user_id
    me = Api(server, session["access_token"]).call("GET", "/user")
    assert me.status_code == 200 and me.json()["id"] == user_id
    listed = owner.call("GET", "/passkeys").json()
    assert [p["id"] for p in listed] == [created["id"]] and "last_used_at" in listed[0]


def test_authentication_options_leave_allow_credentials_empty_for_discoverable_login(
    server: ServerThread,
) -> None:
    res = Api(server).call("POST", "/passkeys/authentication/options")

    assert res.status_code == 200
    assert res.json()["options"]["allowCredentials"] == []
    assert res.json()["options"]["rpId"] == RP_ID


def test_an_authentication_challenge_is_accepted_only_once(server: ServerThread) -> None:
    owner, _ = _sign_up(server)
    authenticator = SoftwareAuthenticator(RP_ID, ORIGIN)
    _register(owner, authenticator)
    api = Api(server)
    options = api.call("POST", "/passkeys/authentication/options").json()
    body = {
        "challenge_id": options["challenge_id"],
        "credential": authenticator.get(options["options"]),
    }

    first = api.call("POST", "/passkeys/authentication/verify", body)
    second = api.call("POST", "/passkeys/authentication/verify", body)

    assert first.status_code == 200
    assert _code(second) == (400, "webauthn_challenge_not_found")


def test_an_unregistered_authenticator_with_a_real_user_handle_is_refused(
    server: ServerThread,
) -> None:
    owner, _ = _sign_up(server)
    _register(owner, SoftwareAuthenticator(RP_ID, ORIGIN))
    stranger = SoftwareAuthenticator(RP_ID, ORIGIN)
    stranger.create(owner.call("POST", "/passkeys/registration/options").json()["options"])

    assert _code(_sign_in(server, stranger)) == (400, "webauthn_verification_failed")


def test_an_assertion_with_a_forged_signature_is_refused(server: ServerThread) -> None:
    owner, _ = _sign_up(server)
    authenticator = SoftwareAuthenticator(RP_ID, ORIGIN)
    _register(owner, authenticator)
    api = Api(server)
    options = api.call("POST", "/passkeys/authentication/options").json()
    assertion = authenticator.get(options["options"])
    other_key = SoftwareAuthenticator(RP_ID, ORIGIN)
    other_key.user_handle = authenticator.user_handle
    assertion["response"]["signature"] = other_key.get(options["options"])["response"]["signature"]

    res = api.call(
        "POST",
        "/passkeys/authentication/verify",
        {"challenge_id": options["challenge_id"], "credential": assertion},
    )

    assert _code(res) == (400, "webauthn_verification_failed")


def test_a_registration_from_an_origin_outside_rp_origins_is_refused(server: ServerThread) -> None:
    owner, _ = _sign_up(server)
    options = owner.call("POST", "/passkeys/registration/options").json()
    credential = SoftwareAuthenticator(RP_ID, "http://evil.example").create(options["options"])

    res = owner.call(
        "POST",
        "/passkeys/registration/verify",
        {"challenge_id": options["challenge_id"], "credential": credential},
    )

    assert _code(res) == (400, "webauthn_verification_failed")
    assert owner.call("GET", "/passkeys").json() == []


def test_registration_verify_with_an_unknown_challenge_is_challenge_not_found(
    server: ServerThread,
) -> None:
    owner, _ = _sign_up(server)
    options = owner.call("POST", "/passkeys/registration/options").json()
    credential = SoftwareAuthenticator(RP_ID, ORIGIN).create(options["options"])

    res = owner.call(
        "POST",
        "/passkeys/registration/verify",
        {"challenge_id": str(uuid.UUID(int=0)), "credential": credential},
    )

    assert _code(res) == (400, "webauthn_challenge_not_found")


def test_another_users_registration_challenge_is_not_found(server: ServerThread) -> None:
    owner, _ = _sign_up(server)
    thief, _ = _sign_up(server)
    options = owner.call("POST", "/passkeys/registration/options").json()
    credential = SoftwareAuthenticator(RP_ID, ORIGIN).create(options["options"])

    res = thief.call(
        "POST",
        "/passkeys/registration/verify",
        {"challenge_id": options["challenge_id"], "credential": credential},
    )

    assert _code(res) == (400, "webauthn_challenge_not_found")


def test_an_expired_challenge_is_challenge_expired(
    standin: StandinFactory, project_config: AuthConfig
) -> None:
    server = standin(_config(project_config, challenge_expiry_seconds=0.0))
    owner, _ = _sign_up(server)
    options = owner.call("POST", "/passkeys/registration/options").json()
    credential = SoftwareAuthenticator(RP_ID, ORIGIN).create(options["options"])

    res = owner.call(
        "POST",
        "/passkeys/registration/verify",
        {"challenge_id": options["challenge_id"], "credential": credential},
    )

    assert _code(res) == (400, "webauthn_challenge_expired")


@pytest.mark.parametrize(
    ("token", "expected"),
    [(None, (403, "bad_jwt")), ("anonymous", (403, "no_authorization"))],
    ids=["api-key-role-token-without-sub", "anonymous-user"],
)
def test_registration_needs_a_signed_in_user_who_is_not_anonymous(
    server: ServerThread, token: str | None, expected: tuple[int, str]
) -> None:
    if token == "anonymous":
        token = Api(server).call("POST", "/signup", {}).json()["access_token"]

    res = Api(server, token).call("POST", "/passkeys/registration/options")

    assert _code(res) == expected


def test_the_owner_renames_and_deletes_a_passkey_and_it_no_longer_signs_in(
    server: ServerThread,
) -> None:
    owner, _ = _sign_up(server)
    authenticator = SoftwareAuthenticator(RP_ID, ORIGIN)
    passkey_id = _register(owner, authenticator)["id"]

    renamed = owner.call("PATCH", f"/passkeys/{passkey_id}", {"friendly_name": "laptop"})
    deleted = owner.call("DELETE", f"/passkeys/{passkey_id}")

    assert renamed.status_code == 200 and renamed.json()["friendly_name"] == "laptop"
    assert deleted.status_code == 204
    assert owner.call("GET", "/passkeys").json() == []
    assert _code(_sign_in(server, authenticator)) == (400, "webauthn_verification_failed")


def test_another_users_passkey_is_not_found_for_rename_or_delete(server: ServerThread) -> None:
    owner, _ = _sign_up(server)
    other, _ = _sign_up(server)
    passkey_id = _register(owner, SoftwareAuthenticator(RP_ID, ORIGIN))["id"]

    assert _code(other.call("PATCH", f"/passkeys/{passkey_id}", {"friendly_name": "x"})) == (
        404,
        "validation_failed",
    )
    assert _code(other.call("DELETE", f"/passkeys/{passkey_id}")) == (404, "validation_failed")
    assert len(owner.call("GET", "/passkeys").json()) == 1


def test_rename_needs_a_friendly_name(server: ServerThread) -> None:
    owner, _ = _sign_up(server)
    passkey_id = _register(owner, SoftwareAuthenticator(RP_ID, ORIGIN))["id"]

    res = owner.call("PATCH", f"/passkeys/{passkey_id}", {"friendly_name": ""})

    assert _code(res) == (400, "validation_failed")


def test_admin_lists_and_deletes_a_users_passkeys(server: ServerThread) -> None:
    owner, user_id = _sign_up(server)
    kept = _register(owner, SoftwareAuthenticator(RP_ID, ORIGIN))["id"]
    dropped = _register(owner, SoftwareAuthenticator(RP_ID, ORIGIN))["id"]

    deleted = _admin(server, "DELETE", f"/admin/users/{user_id}/passkeys/{dropped}")
    listed = _admin(server, "GET", f"/admin/users/{user_id}/passkeys")

    assert deleted.status_code == 204
    assert [p["id"] for p in listed.json()] == [kept]


def test_the_same_credential_cannot_be_registered_twice(server: ServerThread) -> None:
    owner, _ = _sign_up(server)
    authenticator = SoftwareAuthenticator(RP_ID, ORIGIN)
    _register(owner, authenticator)
    options = owner.call("POST", "/passkeys/registration/options").json()
    assert options["options"]["excludeCredentials"] == [
        {"id": b64url(authenticator.credential_id), "type": "public-key"}
    ]

    res = owner.call(
        "POST",
        "/passkeys/registration/verify",
        {
            "challenge_id": options["challenge_id"],
            "credential": authenticator.create(options["options"]),
        },
    )

    assert _code(res) == (422, "webauthn_credential_exists")


@pytest.mark.parametrize("missing", ["rp_id", "rp_display_name", "rp_origins"])
def test_passkeys_on_without_the_relying_party_is_refused_at_load_as_gotrue_refuses_to_start(
    missing: str,
) -> None:
    webauthn = {"rp_id": "localhost", "rp_display_name": "app", "rp_origins": [ORIGIN]}
    del webauthn[missing]

    with pytest.raises(ValueError, match=rf"\[auth.webauthn\] {missing} is required"):
        parse_auth_config({"auth": {"passkey": {"enabled": True}, "webauthn": webauthn}})
    mfa = {"web_authn": {"verify_enabled": True}}
    with pytest.raises(ValueError, match=rf"\[auth.webauthn\] {missing} is required"):
        parse_auth_config({"auth": {"mfa": mfa, "webauthn": webauthn}})


@pytest.mark.parametrize("enabled", [True, False])
def test_settings_report_whether_passkeys_are_enabled(
    standin: StandinFactory, project_config: AuthConfig, enabled: bool
) -> None:
    config = project_config.replace(passkey=PasskeyConfig(enabled=enabled))
    server = standin(config)

    body = httpx.get(f"{server.url}/auth/v1/settings", headers={"apikey": DEFAULT_PUBLISHABLE_KEY})

    assert body.json()["passkeys_enabled"] is enabled


def test_passkeys_off_answer_passkey_disabled_even_to_a_signed_in_user(
    standin: StandinFactory, project_config: AuthConfig
) -> None:
    server = standin(project_config.without_rate_limits().replace(passkey=PasskeyConfig()))
    owner, _ = _sign_up(server)

    res = owner.call("POST", "/passkeys/registration/options")

    assert _code(res) == (404, "passkey_disabled")
