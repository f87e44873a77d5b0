"""The verifier's cache of verified tokens: served until `exp`, bounded, keyed by the token."""

from __future__ import annotations

import time
from typing import Any

import httpx
import jwt
import pytest

from app.auth import TokenVerifier
from app.auth import claims as auth
from app.errors import AuthError
from tests.auth.tokens import user_claims
from tests.support.database import make_settings

pytestmark = pytest.mark.anyio

SECRET = "a-legacy-jwt-secret-long-enough-for-hs256-and-hs512-0123456789abcdefghij"


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every full verification (`jwt.decode` in app.auth), by token."""
    calls: list[str] = []
    real = jwt.decode

    def counting(token: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(token)
        return real(token, *args, **kwargs)

    monkeypatch.setattr(auth.jwt, "decode", counting)
    return calls


def token(**overrides: object) -> str:
    return jwt.encode(user_claims(issuer="x", **overrides), SECRET, algorithm="HS256")


async def test_verify_same_token_twice_decodes_it_once(decodes: list[str]) -> None:
    settings = make_settings(auth_mode="hs256", supabase_jwt_secret=SECRET)
    good = token()
    async with httpx.AsyncClient() as http:
        verifier = TokenVerifier(settings, http)
        first = await verifier.verify(f"Bearer {good}")
        second = await verifier.verify(f"Bearer {good}")

    assert decodes == [good]
    assert (second.user_id, second.token, dict(second.claims)) == (
        first.user_id,
        first.token,
        dict(first.claims),
    )


async def test_verify_cached_token_past_its_exp_is_verified_again(decodes: list[str]) -> None:
    settings = make_settings(auth_mode="hs256", supabase_jwt_secret=SECRET)
    clock = Clock()
    claims = user_claims(issuer="x")
    good, exp = jwt.encode(claims, SECRET, algorithm="HS256"), claims["exp"]
    async with httpx.AsyncClient() as http:
        verifier = TokenVerifier(settings, http, wall_clock=clock)
        await verifier.verify(f"Bearer {good}")
        clock.now = exp + settings.jwt_leeway_seconds  # the moment it stops being valid
        await verifier.verify(f"Bearer {good}")  # still valid by the real clock: decoded again

    assert decodes == [good, good]


async def test_verify_tampered_copy_of_a_cached_token_is_refused() -> None:
    settings = make_settings(auth_mode="hs256", supabase_jwt_secret=SECRET)
    good = token()
    head, payload, signature = good.split(".")
    tampered = f"{head}.{payload}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}"
    async with httpx.AsyncClient() as http:
        verifier = TokenVerifier(settings, http)
        await verifier.verify(f"Bearer {good}")
        with pytest.raises(AuthError):
            await verifier.verify(f"Bearer {tampered}")


async def test_verify_cache_keeps_only_the_most_recent_tokens(decodes: list[str]) -> None:
    settings = make_settings(auth_mode="hs256", supabase_jwt_secret=SECRET)
    a, b, c = token(), token(), token()
    async with httpx.AsyncClient() as http:
        verifier = TokenVerifier(settings, http, cache_size=2)
        for t in (a, b, a, c):  # c pushes out b, the least recently used
            await verifier.verify(f"Bearer {t}")
        await verifier.verify(f"Bearer {a}")
        await verifier.verify(f"Bearer {b}")

    assert len(verifier.verified) == 2
    assert decodes == [a, b, c, b]
