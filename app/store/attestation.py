"""Attested chat RPCs: the service signs what it records about a turn; the database checks it.

Every call that creates, settles or renews a turn (`chat_begin`, `chat_finish`, `chat_renew`) sends
its arguments as one JSON text plus an HMAC-SHA256 over `"<rpc>\\n<text>"`, keyed with
BILLING_ATTESTATION_KEY. The SECURITY DEFINER functions recompute it with the copy of the key in
`private.attestation_keys` and refuse anything else, so a signed-in user who calls them through the
Data API can neither forge usage nor pre-empt, settle or shape a turn (docs/design.md §13).
The MAC covers the exact bytes sent, so there is no canonical form to agree on.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

import orjson

MIN_KEY_BYTES = 32


class Attestor:
    """Signs RPC payloads with the service's key. Holds no per-user state; safe to share."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    @property
    def configured(self) -> bool:
        return len(self._key) >= MIN_KEY_BYTES

    def mac(self, kind: str, text: str) -> str:
        message = kind.encode() + b"\n" + text.encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def params(self, kind: str, payload: Mapping[str, Any], *, field: str) -> dict[str, str]:
        """The RPC arguments: `{field: <json text>, "p_attestation": <hex mac>}`."""
        text = orjson.dumps(payload).decode()
        return {field: text, "p_attestation": self.mac(kind, text)}


def key_bytes(secret: str) -> bytes:
    """The HMAC key a BILLING_ATTESTATION_KEY setting stands for: its UTF-8 bytes."""
    return secret.encode()
