"""TOTP secrets, URIs, QR codes and code checks, as GoTrue (pquerna/otp) makes and checks them."""

from __future__ import annotations

import pyotp
import pytest

from app.local.auth import totp

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
NOW = 1_800_000_015.0  # mid-step, so one step either way stays inside its own window


@pytest.mark.parametrize(
    ("steps", "valid"), [(-2, False), (-1, True), (0, True), (1, True), (2, False)]
)
def test_totp_code_is_valid_within_one_step_of_skew(steps: int, valid: bool) -> None:
    code = pyotp.TOTP(SECRET).at(NOW + steps * totp.PERIOD)

    assert totp.code_is_valid(SECRET, code, now=NOW) is valid


@pytest.mark.parametrize("code", ["", "12345", "1234567", "12345a", "١٢٣٤٥٦"])
def test_totp_code_that_is_not_six_ascii_digits_is_invalid(code: str) -> None:
    assert totp.code_is_valid(SECRET, code, now=NOW) is False


def test_totp_new_enrolment_qr_code_encodes_its_uri() -> None:
    made = totp.new_enrolment(issuer="example.com", account="a@b.co")

    assert made.uri.startswith("otpauth://totp/example.com:a@b.co?algorithm=SHA1&digits=6")
    assert made.uri.endswith(f"&secret={made.secret}")
    assert pyotp.parse_uri(made.uri).secret == made.secret
    assert made.qr_code.startswith("<?xml") and made.qr_code.rstrip().endswith("</svg>")
