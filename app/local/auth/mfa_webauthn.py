"""The WebAuthn MFA factor type: what `/factors/{id}/challenge` and `/verify` do for it.

GoTrue (mfa.go) challenges an unverified WebAuthn factor with a `create` ceremony (registering
the security key, excluding the user's keys already registered) and a verified one with a
`request` ceremony (allowing every key of the user's verified WebAuthn factors). The answer
carries `webauthn: {type, credential_options: {publicKey: …}}`; the ceremony's challenge is kept
as the MFA challenge's `web_authn_session_data`. Verification checks the browser's response
with py_webauthn (`webauthn_rp`) against `[auth.webauthn]`'s rp_id and rp_origins and gives
back the credential to keep in the factor's `web_authn_credential` (go-webauthn's JSON shape:
byte fields in standard base64, as Go marshals them).

One difference: a response that fails verification is 400 `webauthn_verification_failed`
("Credential verification failed", GoTrue's answer for the same failure of a passkey), where
GoTrue 2.189's MFA handler answers 500; the stand-ins never answer 5xx for a client's input.

The factor rows, challenges, AAL and session step-up are the MFA framework's (`factors`,
`routes.mfa`); this module only runs the ceremony, so it takes and returns plain values.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from app.local.auth import webauthn_rp
from app.local.auth.config import WebAuthnConfig
from app.local.auth.errors import AuthApiError, bad_request

CREATE = "create"
REQUEST = "request"


@dataclass(frozen=True)
class FactorChallenge:
    kind: str  # CREATE or REQUEST
    credential_options: dict[str, Any]  # {"publicKey": options}, as go-webauthn wraps them
    session_data: dict[str, Any]  # for auth.mfa_challenges.web_authn_session_data


def credential_ids(verified_factors: list[dict[str, Any]]) -> list[bytes]:
    """The credential ids of the user's verified WebAuthn factors (GoTrue's WebAuthnCredentials)."""
    found = []
    for factor in verified_factors:
        stored = factor.get("web_authn_credential")
        if factor.get("status") == "verified" and isinstance(stored, dict) and stored.get("id"):
            found.append(base64.b64decode(stored["id"]))
    return found


def challenge_for(
    config: WebAuthnConfig,
    user: dict[str, Any],
    factor: dict[str, Any],
    user_factors: list[dict[str, Any]],
) -> FactorChallenge:
    """The ceremony for `factor`: `create` while it is unverified, `request` once it is."""
    known = credential_ids(user_factors)
    name = str(user.get("email") or "")
    if factor["status"] == "verified":
        ceremony = webauthn_rp.authentication_options(config, allow=known)
        kind = REQUEST
    else:
        ceremony = webauthn_rp.registration_options(
            config,
            user_handle=str(user["id"]).encode(),
            user_name=name,
            display_name=name,
            exclude=known,
            discoverable=False,
        )
        kind = CREATE
    session = {"challenge": ceremony.challenge, "type": kind, "user_id": str(user["id"])}
    return FactorChallenge(kind, {"publicKey": ceremony.options}, session)


def check_params(webauthn: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
    """`webauthn: {type, credential_response}` of the verify body, refused as GoTrue does."""
    if webauthn is None:
        raise bad_request("validation_failed", "WebAuthn config required")
    kind = webauthn.get("type")
    if kind not in (CREATE, REQUEST):
        raise bad_request("validation_failed", "WebAuthn type must be create or request")
    response = webauthn.get("credential_response")
    if not isinstance(response, dict):
        raise bad_request("validation_failed", "credential_response required")
    return str(kind), response


def verify_response(
    config: WebAuthnConfig,
    session_data: dict[str, Any],
    kind: str,
    response: dict[str, Any],
    user_factors: list[dict[str, Any]],
) -> dict[str, Any]:
    """The credential (go-webauthn JSON) the response proves; GoTrue's refusals otherwise.

    `create` gives the new key; `request` gives the stored key of the factor that signed, with
    its new signature counter.
    """
    challenge = str(session_data.get("challenge", ""))
    if kind == CREATE:
        try:
            new = webauthn_rp.verify_registration(config, response, challenge)
        except webauthn_rp.CeremonyFailed as exc:
            raise _failed() from exc
        return _credential_json(new)
    try:
        claimed = webauthn_rp.read_assertion(response)
    except webauthn_rp.CeremonyFailed as exc:
        raise bad_request("validation_failed", "Invalid credential_response") from exc
    stored = _stored_credential(user_factors, claimed.credential_id)
    try:
        if stored is None:
            raise webauthn_rp.CeremonyFailed("not a credential of this user")
        sign_count = webauthn_rp.verify_assertion(
            config,
            response,
            challenge,
            public_key=base64.b64decode(stored["publicKey"]),
            sign_count=int(stored["authenticator"]["signCount"]),
        )
    except webauthn_rp.CeremonyFailed as exc:
        raise _failed() from exc
    return {**stored, "authenticator": {**stored["authenticator"], "signCount": sign_count}}


def _failed() -> AuthApiError:
    return bad_request("webauthn_verification_failed", "Credential verification failed")


def _stored_credential(
    user_factors: list[dict[str, Any]], credential_id: bytes
) -> dict[str, Any] | None:
    for factor in user_factors:
        stored = factor.get("web_authn_credential")
        if (
            factor.get("status") == "verified"
            and isinstance(stored, dict)
            and base64.b64decode(stored.get("id", "")) == credential_id
        ):
            return stored
    return None


def _credential_json(new: webauthn_rp.NewCredential) -> dict[str, Any]:
    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    aaguid = bytes.fromhex(new.aaguid.replace("-", "")) if new.aaguid else b""
    return {
        "id": b64(new.credential_id),
        "publicKey": b64(new.public_key),
        "attestationType": new.attestation_type,
        "transport": new.transports,
        "flags": {
            "userPresent": True,
            "userVerified": new.user_verified,
            "backupEligible": new.backup_eligible,
            "backupState": new.backed_up,
        },
        "authenticator": {
            "AAGUID": b64(aaguid),
            "signCount": new.sign_count,
            "cloneWarning": False,
            "attachment": "",
        },
    }
