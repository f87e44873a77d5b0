"""The session check's cache: one Auth call per session per interval, refusals remembered too,
Auth unreachable fails open (app/auth/sessions.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
import pytest

from app.auth.auth_server import AuthServer
from app.auth.refusal import TokenRefused
from app.auth.sessions import SessionCheck
from app.errors import AuthUnavailable, StoreError
from app.local.postgres import free_port


class FakeAuth:
    def __init__(self) -> None:
        self.calls = 0
        self.answer: Exception | None = None

    async def confirm(self, token: str, claims: Mapping[str, Any]) -> None:
        self.calls += 1
        if self.answer is not None:
            raise self.answer


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


CLAIMS = {"sub": "u1", "session_id": "s1"}


@pytest.mark.anyio
async def test_session_check_asks_auth_once_per_interval_per_session() -> None:
    auth, clock = FakeAuth(), Clock()
    check = SessionCheck(auth, 60, clock=clock)

    for _ in range(100):
        await check.ensure("t", CLAIMS)
    await check.ensure("t2", {"sub": "u1", "session_id": "s2"})  # another session of the user
    clock.now += 59.9
    await check.ensure("t", CLAIMS)
    assert auth.calls == 2
    clock.now += 0.2
    await check.ensure("t", CLAIMS)
    assert auth.calls == 3


@pytest.mark.anyio
async def test_session_check_remembers_a_refusal_and_asks_again_after_the_interval() -> None:
    auth, clock = FakeAuth(), Clock()
    check = SessionCheck(auth, 60, clock=clock)
    await check.ensure("t", CLAIMS)
    auth.answer = TokenRefused("revoked", "session_not_found")
    clock.now += 61

    for _ in range(3):
        with pytest.raises(TokenRefused):
            await check.ensure("t", CLAIMS)
    assert auth.calls == 2


@pytest.mark.anyio
@pytest.mark.parametrize(
    "down", [AuthUnavailable("auth server timed out"), StoreError("down", code="auth_unavailable")]
)
async def test_session_check_auth_down_serves_the_token_and_asks_next_time(
    down: Exception,
) -> None:
    auth, clock = FakeAuth(), Clock()
    check = SessionCheck(auth, 60, clock=clock)
    auth.answer = down

    await check.ensure("t", CLAIMS)
    await check.ensure("t", CLAIMS)
    assert auth.calls == 2


@pytest.mark.anyio
async def test_session_check_with_the_real_auth_client_and_auth_unreachable_serves_the_token() -> (
    None
):
    """What `AuthServer` raises when Auth is down (AuthUnavailable) must fail open too."""
    async with httpx.AsyncClient() as http:
        auth = AuthServer(
            f"http://127.0.0.1:{free_port()}/auth/v1", http, headers={}, timeout_seconds=2
        )
        await SessionCheck(auth, 60).ensure("t", CLAIMS | {"exp": 2**31})


@pytest.mark.anyio
async def test_session_check_zero_seconds_never_asks() -> None:
    auth = FakeAuth()
    await SessionCheck(auth, 0).ensure("t", CLAIMS)
    assert auth.calls == 0


@pytest.mark.anyio
async def test_session_check_skips_a_token_past_exp_within_the_leeway() -> None:
    auth = FakeAuth()
    check = SessionCheck(auth, 60, wall_clock=lambda: 1000.0)
    await check.ensure("t", CLAIMS | {"exp": 990})
    assert auth.calls == 0
    await check.ensure("t", CLAIMS | {"exp": 1010})
    assert auth.calls == 1
