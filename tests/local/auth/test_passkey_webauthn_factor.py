"""The WebAuthn MFA factor's ceremonies (`mfa_webauthn`): a software security key registers on
an unverified factor's `create` challenge and signs a verified factor's `request` challenge;
py_webauthn refuses what does not match. The factor rows are plain dicts as the MFA framework
reads them from `auth.mfa_factors`; the HTTP routes are the framework's."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from app.local.auth import mfa_webauthn
from app.local.auth.config import WebAuthnConfig
from app.local.auth.errors import AuthApiError
from tests.support.webauthn_authenticator import SoftwareAuthenticator, b64url, from_b64url

RP_ID = "localhost"
ORIGIN = "http://localhost:5173"
CONFIG = WebAuthnConfig(rp_display_name="tests", rp_id=RP_ID, rp_origins=(ORIGIN,))
USER = {"id": uuid.uuid4(), "email": "key@example.com"}


def _factor(status: str = "unverified", credential: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "factor_type": "webauthn",
        "status": status,
        "web_authn_credential": credential,
    }


def _enrolled(key: SoftwareAuthenticator) -> dict[str, Any]:
    """A verified factor holding `key`, made through the create ceremony."""
    factor = _factor()
    made = mfa_webauthn.challenge_for(CONFIG, USER, factor, [factor])
    response = key.create(made.credential_options["publicKey"])
    stored = mfa_webauthn.verify_response(CONFIG, made.session_data, made.kind, response, [factor])
    return _factor("verified", stored)


def test_an_unverified_factor_is_challenged_to_create_a_non_discoverable_key() -> None:
    factor = _factor()

    made = mfa_webauthn.challenge_for(CONFIG, USER, factor, [factor])

    options = made.credential_options["publicKey"]
    assert made.kind == "create"
    assert options["rp"]["id"] == RP_ID
    assert from_b64url(options["user"]["id"]) == str(USER["id"]).encode()
    assert options["authenticatorSelection"]["residentKey"] == "discouraged"
    assert made.session_data["challenge"] == options["challenge"]


def test_a_created_key_is_kept_and_a_verified_factor_is_challenged_to_sign_with_it() -> None:
    key = SoftwareAuthenticator(RP_ID, ORIGIN)
    verified = _enrolled(key)
    assert verified["web_authn_credential"]["authenticator"]["signCount"] == 0

    made = mfa_webauthn.challenge_for(CONFIG, USER, verified, [verified])
    options = made.credential_options["publicKey"]
    assertion = key.get(options)
    proved = mfa_webauthn.verify_response(
        CONFIG, made.session_data, made.kind, assertion, [verified]
    )

    assert made.kind == "request"
    assert [c["id"] for c in options["allowCredentials"]] == [b64url(key.credential_id)]
    assert proved["id"] == verified["web_authn_credential"]["id"]
    assert proved["authenticator"]["signCount"] == 1


def test_a_new_factor_excludes_the_keys_of_verified_factors() -> None:
    key = SoftwareAuthenticator(RP_ID, ORIGIN)
    verified = _enrolled(key)
    new = _factor()

    made = mfa_webauthn.challenge_for(CONFIG, USER, new, [verified, new])

    excluded = made.credential_options["publicKey"]["excludeCredentials"]
    assert [c["id"] for c in excluded] == [b64url(key.credential_id)]


def test_a_request_signed_by_a_key_not_of_the_user_is_refused() -> None:
    verified = _enrolled(SoftwareAuthenticator(RP_ID, ORIGIN))
    stranger = SoftwareAuthenticator(RP_ID, ORIGIN)
    stranger.user_handle = str(USER["id"]).encode()
    made = mfa_webauthn.challenge_for(CONFIG, USER, verified, [verified])

    with pytest.raises(AuthApiError) as refused:
        mfa_webauthn.verify_response(
            CONFIG,
            made.session_data,
            made.kind,
            stranger.get(made.credential_options["publicKey"]),
            [verified],
        )

    assert (refused.value.status, refused.value.code) == (400, "webauthn_verification_failed")


def test_a_response_to_another_challenge_is_refused() -> None:
    key = SoftwareAuthenticator(RP_ID, ORIGIN)
    verified = _enrolled(key)
    first = mfa_webauthn.challenge_for(CONFIG, USER, verified, [verified])
    second = mfa_webauthn.challenge_for(CONFIG, USER, verified, [verified])

    with pytest.raises(AuthApiError) as refused:
        mfa_webauthn.verify_response(
            CONFIG,
            second.session_data,
            second.kind,
            key.get(first.credential_options["publicKey"]),
            [verified],
        )

    assert refused.value.code == "webauthn_verification_failed"


def test_a_key_created_for_an_origin_outside_rp_origins_is_refused() -> None:
    factor = _factor()
    made = mfa_webauthn.challenge_for(CONFIG, USER, factor, [factor])
    response = SoftwareAuthenticator(RP_ID, "http://evil.example").create(
        made.credential_options["publicKey"]
    )

    with pytest.raises(AuthApiError) as refused:
        mfa_webauthn.verify_response(CONFIG, made.session_data, made.kind, response, [factor])

    assert (refused.value.status, refused.value.code) == (400, "webauthn_verification_failed")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (None, "WebAuthn config required"),
        ({"type": "sign"}, "WebAuthn type must be create or request"),
        ({"type": "create"}, "credential_response required"),
    ],
)
def test_verify_params_are_refused_as_gotrue_does(
    params: dict[str, Any] | None, message: str
) -> None:
    with pytest.raises(AuthApiError) as refused:
        mfa_webauthn.check_params(params)

    assert (refused.value.status, refused.value.code) == (400, "validation_failed")
    assert str(refused.value.message) == message
