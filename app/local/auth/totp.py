"""TOTP secrets, `otpauth://` URIs, their QR code and code checks, as GoTrue's enrolment makes them.

GoTrue (pquerna/otp) draws a 20-byte secret, shown base32 without padding; the URI names
`issuer:account` and carries algorithm, digits, issuer, period and secret in that (sorted) order;
the QR code is an SVG document (error correction H, 3 px modules, a 4-module quiet zone). Codes
are SHA-1, 6 digits, 30 s steps, one step of skew either way (`totp.ValidateCustom`, Skew 1).
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from urllib.parse import quote, urlencode

import pyotp
import segno

SECRET_BYTES = 20
PERIOD = 30
DIGITS = 6
SKEW_STEPS = 1


@dataclass(frozen=True)
class TotpEnrolment:
    secret: str
    uri: str
    qr_code: str


def new_enrolment(*, issuer: str, account: str) -> TotpEnrolment:
    """A fresh secret for `account`, its URI and the URI's QR code (SVG markup)."""
    secret = pyotp.random_base32(length=SECRET_BYTES * 8 // 5)
    uri = otpauth_uri(secret, issuer=issuer, account=account)
    return TotpEnrolment(secret=secret, uri=uri, qr_code=qr_svg(uri))


def otpauth_uri(secret: str, *, issuer: str, account: str) -> str:
    label = quote(f"{issuer}:{account}", safe="@:+")
    query = urlencode(
        {
            "algorithm": "SHA1",
            "digits": str(DIGITS),
            "issuer": issuer,
            "period": str(PERIOD),
            "secret": secret,
        }
    )
    return f"otpauth://totp/{label}?{query}"


def qr_svg(data: str) -> str:
    out = io.BytesIO()
    segno.make_qr(data, error="h").save(out, kind="svg", scale=3, border=4, xmldecl=True)
    return out.getvalue().decode()


def code_is_valid(secret: str, code: str, *, now: float | None = None) -> bool:
    """`code` matches the step of `now` or one step either side (constant-time compares)."""
    if len(code) != DIGITS or not (code.isascii() and code.isdigit()):
        return False
    at = time.time() if now is None else now
    return pyotp.TOTP(secret, digits=DIGITS, interval=PERIOD).verify(
        code, for_time=int(at), valid_window=SKEW_STEPS
    )
