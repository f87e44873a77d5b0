"""Whatever JSON a client sends as a WebAuthn credential, the relying party (`webauthn_rp`)
refuses it as `CeremonyFailed` (a 400 at the routes), never with another exception (a 500)."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.local.auth import webauthn_rp
from app.local.auth.config import WebAuthnConfig

CONFIG = WebAuthnConfig(rp_id="localhost", rp_origins=("http://localhost:5173",))
CHALLENGE = base64.urlsafe_b64encode(b"c" * 32).rstrip(b"=").decode()

_b64 = st.binary(max_size=80).map(lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode())
_scalar = st.none() | st.booleans() | st.integers() | st.text(max_size=20) | _b64
_json = st.recursive(
    _scalar,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
_response_keys = st.sampled_from(
    ["clientDataJSON", "attestationObject", "authenticatorData", "signature", "userHandle"]
)
_credential = st.fixed_dictionaries(
    {},
    optional={
        "id": _b64 | _json,
        "rawId": _b64 | _json,
        "type": st.just("public-key") | _json,
        "response": st.dictionaries(_response_keys, _b64 | _json, max_size=5) | _json,
        "authenticatorAttachment": st.sampled_from(["platform", "cross-platform"]) | _json,
    },
)


def _refused_cleanly(call: Any) -> None:
    with pytest.raises(webauthn_rp.CeremonyFailed):
        call()


@settings(max_examples=150, deadline=None)
@given(_credential)
def test_any_registration_credential_but_a_real_one_is_ceremony_failed(
    cred: dict[str, Any],
) -> None:
    _refused_cleanly(lambda: webauthn_rp.verify_registration(CONFIG, cred, CHALLENGE))


@settings(max_examples=150, deadline=None)
@given(_credential)
def test_any_assertion_but_a_real_one_is_ceremony_failed(cred: dict[str, Any]) -> None:
    def read_then_verify() -> None:
        webauthn_rp.read_assertion(cred)
        webauthn_rp.verify_assertion(CONFIG, cred, CHALLENGE, public_key=b"\xa0", sign_count=0)

    _refused_cleanly(read_then_verify)
