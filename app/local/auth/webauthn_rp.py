"""The WebAuthn relying party of the Auth stand-in: ceremony options out, responses verified.

GoTrue builds both with go-webauthn from `[auth.webauthn]` (rp_id, rp_display_name, rp_origins);
here py_webauthn does the cryptography (attestation and assertion signatures, rpId hash, origin,
challenge, user presence) and this module only shapes what GoTrue sends: no attestation
(`none`), discoverable credentials (`residentKey: required`), user verification preferred.
A ceremony's state is its challenge, kept by the caller in `auth.webauthn_challenges`.

py_webauthn's exceptions are translated here, once, into `CeremonyFailed`.
"""

from __future__ import annotations

import contextlib
import enum
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import webauthn
from webauthn.helpers import bytes_to_base64url, exceptions
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from app.local.auth.config import WebAuthnConfig

_CHALLENGE_BYTES = 32  # go-webauthn's default challenge length


class CeremonyFailed(Exception):
    """A credential response that does not parse or does not verify."""


@dataclass(frozen=True)
class Ceremony:
    """Options for the browser (`options`, camelCase JSON) and the challenge they carry."""

    options: dict[str, Any]
    challenge: str  # base64url, as the client data echoes it


@dataclass(frozen=True)
class NewCredential:
    credential_id: bytes
    public_key: bytes  # COSE
    sign_count: int
    aaguid: str
    attestation_type: str
    backup_eligible: bool
    backed_up: bool
    user_verified: bool
    transports: list[str]


@dataclass(frozen=True)
class Assertion:
    """What an assertion claims before it is verified: the credential and the user handle."""

    credential_id: bytes
    user_handle: bytes | None


def registration_options(
    config: WebAuthnConfig,
    *,
    user_handle: bytes,
    user_name: str,
    display_name: str,
    exclude: list[bytes],
    discoverable: bool = True,
) -> Ceremony:
    """`navigator.credentials.create()` options for a credential of this user: discoverable
    (a passkey, `residentKey: required`) or a second-factor key (`discouraged`)."""
    challenge = secrets.token_bytes(_CHALLENGE_BYTES)
    options = webauthn.generate_registration_options(
        rp_id=config.rp_id,
        rp_name=config.rp_display_name or config.rp_id,
        user_id=user_handle,
        user_name=user_name,
        user_display_name=display_name,
        challenge=challenge,
        timeout=int(config.challenge_expiry_seconds * 1000),
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=(
                ResidentKeyRequirement.REQUIRED
                if discoverable
                else ResidentKeyRequirement.DISCOURAGED
            ),
            require_resident_key=discoverable,
            user_verification=UserVerificationRequirement.PREFERRED,
        ),
        exclude_credentials=[PublicKeyCredentialDescriptor(id=cid) for cid in exclude],
    )
    return Ceremony(_as_json(options), bytes_to_base64url(challenge))


def authentication_options(config: WebAuthnConfig, *, allow: list[bytes] | None = None) -> Ceremony:
    """`navigator.credentials.get()` options; no `allow` is a discoverable (passkey) login."""
    challenge = secrets.token_bytes(_CHALLENGE_BYTES)
    options = webauthn.generate_authentication_options(
        rp_id=config.rp_id,
        challenge=challenge,
        timeout=int(config.challenge_expiry_seconds * 1000),
        allow_credentials=[PublicKeyCredentialDescriptor(id=cid) for cid in allow or []],
        user_verification=UserVerificationRequirement.PREFERRED,
    )
    return Ceremony(_as_json(options), bytes_to_base64url(challenge))


def verify_registration(
    config: WebAuthnConfig, credential: dict[str, Any], challenge: str
) -> NewCredential:
    """The attested credential of a `create()` response, checked against the ceremony."""
    with _translated():
        verified = webauthn.verify_registration_response(
            credential=credential,
            expected_challenge=webauthn.base64url_to_bytes(challenge),
            expected_rp_id=config.rp_id,
            expected_origin=list(config.rp_origins),
        )
    response = credential.get("response")
    transports = response.get("transports") if isinstance(response, dict) else None
    return NewCredential(
        credential_id=verified.credential_id,
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
        aaguid=verified.aaguid,
        attestation_type=_text(verified.fmt),
        backup_eligible=_text(verified.credential_device_type) == "multi_device",
        backed_up=verified.credential_backed_up,
        user_verified=verified.user_verified,
        transports=[str(t) for t in transports] if isinstance(transports, list) else [],
    )


def read_assertion(credential: dict[str, Any]) -> Assertion:
    """The credential id and user handle an assertion names (not yet verified)."""
    with _translated():
        parsed = webauthn.helpers.parse_authentication_credential_json(credential)
    return Assertion(credential_id=parsed.raw_id, user_handle=parsed.response.user_handle)


def verify_assertion(
    config: WebAuthnConfig,
    credential: dict[str, Any],
    challenge: str,
    *,
    public_key: bytes,
    sign_count: int,
) -> int:
    """Check a `get()` response signed by the stored key; returns the new signature counter."""
    with _translated():
        verified = webauthn.verify_authentication_response(
            credential=credential,
            expected_challenge=webauthn.base64url_to_bytes(challenge),
            expected_rp_id=config.rp_id,
            expected_origin=list(config.rp_origins),
            credential_public_key=public_key,
            credential_current_sign_count=sign_count,
        )
    return verified.new_sign_count


def _text(value: object) -> str:
    """A py_webauthn enum member or the plain string it sometimes hands back instead."""
    return str(value.value) if isinstance(value, enum.Enum) else str(value)


def _as_json(options: Any) -> dict[str, Any]:
    value: dict[str, Any] = orjson.loads(webauthn.options_to_json(options))
    return value


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except exceptions.WebAuthnException as exc:
        raise CeremonyFailed(str(exc)) from exc
