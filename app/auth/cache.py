"""The verified-token cache: a bounded LRU keyed by the token string, good until `exp`.

A client's next turn skips the signature check. The verifier decides what a hit is worth: with
a JWKS key it counts only while that is the very key the token was verified with, so a
rotated-out key is refused as before.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import jwt

VERIFIED_CACHE_SIZE = 10_000


@dataclass(frozen=True)
class VerifiedToken:
    claims: dict[str, Any]
    key: jwt.PyJWK | None  # the JWKS key it verified with (None: the HS256 secret)
    kid: str | None
    alg: str
    good_until: float  # wall clock: exp + leeway


class VerifiedTokens:
    """A bounded LRU of verified tokens (token string → what it verified as)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[str, VerifiedToken] = OrderedDict()

    def get(self, token: str, now: float) -> VerifiedToken | None:
        entry = self._entries.get(token)
        if entry is None:
            return None
        if now >= entry.good_until:
            del self._entries[token]
            return None
        self._entries.move_to_end(token)
        return entry

    def put(self, token: str, entry: VerifiedToken) -> None:
        self._entries[token] = entry
        self._entries.move_to_end(token)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
