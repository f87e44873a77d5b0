"""`[auth.mfa]` of `supabase/config.toml`, read as the Supabase CLI maps it (its template's
defaults when a key is absent)."""

from __future__ import annotations

from app.local.auth.config import parse_auth_config


def test_mfa_config_is_off_with_the_cli_defaults_when_absent() -> None:
    mfa = parse_auth_config({"auth": {}}).mfa

    assert (mfa.max_enrolled_factors, mfa.totp.enroll_enabled, mfa.totp.verify_enabled) == (
        10,
        False,
        False,
    )
    assert not mfa.web_authn.enroll_enabled


def test_mfa_config_reads_the_cli_sections() -> None:
    mfa = parse_auth_config(
        {
            "auth": {
                "mfa": {
                    "max_enrolled_factors": 3,
                    "totp": {"enroll_enabled": True, "verify_enabled": True},
                    "web_authn": {"enroll_enabled": True},
                    "phone": {"otp_length": 6, "template": "{{ .Code }}"},
                },
                # GoTrue will not start with WebAuthn factors on and no relying party.
                "webauthn": {"rp_id": "localhost", "rp_display_name": "app", "rp_origins": ["x"]},
            }
        }
    ).mfa

    assert mfa.max_enrolled_factors == 3
    assert (mfa.totp.enroll_enabled, mfa.totp.verify_enabled) == (True, True)
    assert (mfa.web_authn.enroll_enabled, mfa.web_authn.verify_enabled) == (True, False)
    assert not mfa.phone.enroll_enabled
