"""The webhook's signature: `X-Chat-Stream-Signature: t=<unix seconds>,v1=<hex>`.

`v1` is HMAC-SHA256 over `"<t>.<body bytes>"` keyed with `ALERT_WEBHOOK_SECRET` (the scheme
Stripe's and Svix's receivers already know): the timestamp inside the MAC lets a receiver refuse
replays older than a few minutes. `verify` is what a receiver runs (the tests and the local sink
use it); it compares in constant time.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "x-chat-stream-signature"
ALERT_ID_HEADER = "x-chat-stream-alert-id"  # the same on every retry: receivers dedupe by it
TOLERANCE_SECONDS = 300


def sign(body: bytes, secret: bytes, timestamp: int) -> str:
    mac = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(
    body: bytes, header: str, secret: bytes, now: float, tolerance: int = TOLERANCE_SECONDS
) -> bool:
    """True when `header` signs `body` with `secret` and is at most `tolerance` seconds old."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts.get("t", ""))
    except ValueError:
        return False
    if abs(now - timestamp) > tolerance:
        return False
    expected = sign(body, secret, timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))
