"""The bound on Auth calls for HS256 tokens only Supabase Auth can judge (`app.auth.auth_calls`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio
import pytest

from app.auth.auth_calls import REFUSED_SIZE, AuthCallBudget, AuthCalls, TokenBucket
from app.auth.refusal import TokenRefused
from app.errors import AuthUnavailable
from tests.auth.tokens import FakeClock

pytestmark = pytest.mark.anyio


class FakeAuth:
    """Accepts the tokens in `good`, refuses the rest; counts and can hold its answers."""

    def __init__(self, good: set[str] | None = None) -> None:
        self.good = good or set()
        self.asked: list[str] = []
        self.release = anyio.Event()
        self.hold = False

    async def ask(self, token: str, claims: Mapping[str, Any]) -> None:
        self.asked.append(token)
        if self.hold:
            await self.release.wait()
        if token not in self.good:
            raise TokenRefused("revoked", "auth server refused the token (403)", status=403)


def claims(exp: float = 2_000_000_000) -> dict[str, Any]:
    return {"sub": "00000000-0000-4000-8000-000000000001", "exp": exp}


def test_token_bucket_holds_capacity_and_refills_at_its_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=2.0, capacity=4.0, clock=clock)

    assert [bucket.take() for _ in range(5)] == [True, True, True, True, False]
    assert bucket.seconds_to_next() == pytest.approx(0.5)
    clock.advance(0.5)
    assert bucket.take() and not bucket.take()
    clock.advance(100)  # never more than its capacity
    assert sum(bucket.take() for _ in range(10)) == 4


async def test_a_flood_of_forged_tokens_costs_at_most_the_bucket_in_auth_calls() -> None:
    auth, clock = FakeAuth(), FakeClock()
    calls = AuthCalls(auth.ask, per_second=5, clock=clock, wall_clock=lambda: 1_000.0)
    outcomes: list[AuthCallBudget | TokenRefused] = []
    for n in range(200):
        try:
            await calls.confirm(f"forged-{n}", claims())
        except (AuthCallBudget, TokenRefused) as exc:
            outcomes.append(exc)
    spent = [exc for exc in outcomes if isinstance(exc, AuthCallBudget)]

    assert len(auth.asked) == calls.calls == 10  # the bucket's capacity: twice the rate
    assert len(spent) == 190 and len(outcomes) == 200
    assert {(exc.status, exc.code) for exc in spent} == {(503, "auth_unavailable")}
    assert all(exc.retry_after is not None and exc.retry_after >= 1 for exc in spent)


async def test_a_real_token_is_confirmed_again_once_the_bucket_refills() -> None:
    auth, clock = FakeAuth(good={"real"}), FakeClock()
    calls = AuthCalls(auth.ask, per_second=1, clock=clock, wall_clock=lambda: 1_000.0)
    for n in range(2):
        with pytest.raises(TokenRefused):
            await calls.confirm(f"forged-{n}", claims())
    with pytest.raises(AuthUnavailable):  # 503, not 401: the real user is not signed out
        await calls.confirm("real", claims())

    clock.advance(1.0)
    await calls.confirm("real", claims())
    assert auth.asked == ["forged-0", "forged-1", "real"]


async def test_a_refused_token_is_refused_again_without_a_call_until_its_exp() -> None:
    auth, now = FakeAuth(), [1_000.0]
    calls = AuthCalls(auth.ask, per_second=100, wall_clock=lambda: now[0])
    for _ in range(50):
        with pytest.raises(TokenRefused) as caught:
            await calls.confirm("forged", claims(exp=1_060))
        assert caught.value.reason == "revoked"
    assert auth.asked == ["forged"]

    now[0] = 1_061.0  # past its exp the entry is dropped (the verifier refuses expired tokens)
    with pytest.raises(TokenRefused):
        await calls.confirm("forged", claims(exp=1_060))
    assert auth.asked == ["forged", "forged"]


async def test_the_refused_tokens_remembered_are_bounded() -> None:
    auth = FakeAuth()
    calls = AuthCalls(auth.ask, per_second=1e9, wall_clock=lambda: 1_000.0)
    for n in range(REFUSED_SIZE + 10):
        with pytest.raises(TokenRefused):
            await calls.confirm(f"forged-{n}", claims())
    with pytest.raises(TokenRefused):
        await calls.confirm("forged-0", claims())  # the oldest was forgotten: asked again

    assert len(auth.asked) == REFUSED_SIZE + 11
    assert len(calls._refused) == REFUSED_SIZE


async def test_concurrent_requests_with_one_token_share_one_call() -> None:
    auth = FakeAuth(good={"real"})
    auth.hold = True
    calls = AuthCalls(auth.ask, per_second=1, wall_clock=lambda: 1_000.0)
    done: list[int] = []

    async def one(n: int) -> None:
        await calls.confirm("real", claims())
        done.append(n)

    async with anyio.create_task_group() as tg:
        for n in range(20):
            tg.start_soon(one, n)
        await anyio.sleep(0.05)
        auth.release.set()

    assert sorted(done) == list(range(20))
    assert auth.asked == ["real"]  # one call, one bucket token


async def test_requests_sharing_a_call_auth_refuses_are_all_refused() -> None:
    auth = FakeAuth()
    auth.hold = True
    calls = AuthCalls(auth.ask, per_second=1, wall_clock=lambda: 1_000.0)
    refused: list[str] = []

    async def one() -> None:
        try:
            await calls.confirm("forged", claims())
        except TokenRefused as exc:
            refused.append(exc.reason)

    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(one)
        await anyio.sleep(0.05)
        auth.release.set()

    assert refused == ["revoked"] * 5 and auth.asked == ["forged"]


def test_a_spent_budget_answers_503_with_retry_after_and_the_true_message() -> None:
    from app.api.errors import error_response  # noqa: PLC0415 - the edge's translation

    response = error_response(AuthCallBudget(retry_after=2))

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "2"
    assert b'"code":"auth_unavailable"' in response.body
    assert b"try again in a moment" in response.body
