"""JWKS caching: one fetch per cache period, rotation after one refetch, rate-limited refetches,
coalesced concurrent refreshes, and fetch failures that refuse (401) rather than crash.

A small JWKS app of our own is served over real HTTP so the test controls the keys, counts the
fetches and injects failures; a hand-moved clock replaces waiting.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
import jwt
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from app.auth import TokenVerifier
from app.config import Settings
from app.errors import AuthError
from app.local.postgres import free_port
from app.local.server import ServerThread
from tests.auth.tokens import FakeClock, SigningKey, new_key, user_claims
from tests.support.database import make_settings

pytestmark = pytest.mark.anyio

ISSUER = "https://project.example/auth/v1"
ANON = "anon-key-for-the-jwks-tests"
MIN_REFRESH = 5.0
CACHE_SECONDS = 600


@dataclass
class JwksState:
    keys: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    body: str | None = None  # raw body instead of the JWKS
    delay: float = 0.0
    fetches: int = 0
    apikeys: list[str | None] = field(default_factory=list)


@pytest.fixture(scope="module")
def jwks_server() -> Iterator[tuple[ServerThread, JwksState]]:
    state = JwksState()

    async def jwks(request: Request) -> Response:
        state.fetches += 1
        state.apikeys.append(request.headers.get("apikey"))
        if state.delay:
            await anyio.sleep(state.delay)
        if state.body is not None:
            return PlainTextResponse(state.body, status_code=state.status)
        return JSONResponse({"keys": state.keys}, status_code=state.status)

    app = Starlette(routes=[Route("/auth/v1/.well-known/jwks.json", jwks)])
    with ServerThread(app, free_port()) as server:
        yield server, state


@dataclass
class Setup:
    settings: Settings
    state: JwksState
    key: SigningKey
    clock: FakeClock

    def publish(self, *keys: SigningKey) -> None:
        self.state.keys = [k.public_jwk() for k in keys]

    def token(self, key: SigningKey | None = None, *, kid: str | None = None) -> str:
        return f"Bearer {(key or self.key).sign(user_claims(issuer=ISSUER), kid=kid)}"


@pytest.fixture
def setup(jwks_server: tuple[ServerThread, JwksState]) -> Setup:
    server, state = jwks_server
    state.__init__()  # type: ignore[misc]  # fresh state for every test, same server
    key = new_key()
    state.keys = [key.public_jwk()]
    settings = make_settings(
        auth_mode="jwks",
        supabase_url=server.url,
        supabase_anon_key=ANON,
        jwt_issuer=ISSUER,
        jwks_cache_seconds=CACHE_SECONDS,
        jwks_min_refresh_seconds=MIN_REFRESH,
    )
    return Setup(settings=settings, state=state, key=key, clock=FakeClock())


async def test_jwks_warm_cache_serves_many_verifies_from_one_fetch(setup: Setup) -> None:
    async with httpx.AsyncClient() as http:
        verifier = TokenVerifier(setup.settings, http, clock=setup.clock)
        for _ in range(20):
            await verifier.verify(setup.token())

    assert setup.state.fetches == 1
    assert setup.state.apikeys == [ANON]


async def test_jwks_concurrent_cold_verifies_share_one_fetch(setup: Setup) -> None:
    setup.state.delay = 0.3
    accepted: list[str] = []
    no_quiet_period = setup.settings.model_copy(update={"jwks_min_refresh_seconds": 0.0})
    async with httpx.AsyncClient() as http:
        verifier = TokenVerifier(no_quiet_period, http, clock=setup.clock)

        async def one() -> None:
            accepted.append((await verifier.verify(setup.token())).user_id)

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                for _ in range(50):
                    tg.start_soon(one)

    assert len(accepted) == 50
    assert setup.state.fetches == 1


async def test_jwks_flood_of_unknown_kids_fetches_at_most_once_per_quiet_period(
    setup: Setup,
) -> None:
    async with httpx.AsyncClient() as http:
        verifier = TokenVerifier(setup.settings, http, clock=setup.clock)
        await verifier.verify(setup.token())  # warm: fetch 1
        attacker = new_key()

        async def flood(n: int) -> int:
            refused = 0

            async def one() -> None:
                nonlocal refused
                try:
                    await verifier.verify(setup.token(attacker, kid=str(uuid.uuid4())))
                except AuthError:
                    refused += 1

            async with anyio.create_task_group() as tg:
                for _ in range(n):
                    tg.start_soon(one)
            return refused

        assert await flood(100) == 100
        assert setup.state.fetches == 1  # inside the quiet period after the warm fetch
        setup.clock.advance(MIN_REFRESH + 0.1)
        assert await flood(100) == 100
        assert setup.state.fetches == 2  # one refetch for the whole flood
        for _ in range(50):  # sequential this time
            with pytest.raises(AuthError, match="no signing key for kid"):
                await verifier.verify(setup.token(attacker, kid=str(uuid.uuid4())))
        assert setup.state.fetches == 2


async def test_jwks_key_rotation_new_kid_accepted_after_one_refetch(setup: Setup) -> None:
    async with httpx.AsyncClient() as http:
        verifier = TokenVerifier(setup.settings, http, clock=setup.clock)
        await verifier.verify(setup.token())
        rotated = new_key()
        setup.publish(setup.key, rotated)

        with pytest.raises(AuthError, match="no signing key"):  # too soon after the last fetch
            await verifier.verify(setup.token(rotated))
        setup.clock.advance(MIN_REFRESH)
        caller = await verifier.verify(setup.token(rotated))
        await verifier.verify(setup.token(rotated))
        await verifier.verify(setup.token())  # the old key is still published

    assert caller.claims["role"] == "authenticated"
    assert setup.state.fetches == 2


async def test_jwks_retired_key_refused_after_cache_expiry(setup: Setup) -> None:
    async with httpx.AsyncClient() as http:
        verifier = TokenVerifier(setup.settings, http, clock=setup.clock)
        await verifier.verify(setup.token())
        successor = new_key()
        setup.publish(successor)
        await verifier.verify(setup.token())  # still cached
        setup.clock.advance(CACHE_SECONDS)

        with pytest.raises(AuthError, match="no signing key"):
            await verifier.verify(setup.token())
        await verifier.verify(setup.token(successor))

    assert setup.state.fetches == 2


async def test_jwks_refetch_failure_keeps_the_held_keys_and_logs(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    async with httpx.AsyncClient() as http:
        verifier = TokenVerifier(setup.settings, http, clock=setup.clock)
        await verifier.verify(setup.token())
        setup.state.status = 503
        setup.clock.advance(CACHE_SECONDS)

        with caplog.at_level(logging.WARNING, logger="app.auth"):
            caller = await verifier.verify(setup.token())

    assert caller.claims["sub"]
    assert setup.state.fetches == 2
    assert "keeping the keys held" in caplog.text
    assert "HTTP 503" in caplog.text


@pytest.mark.parametrize(
    ("status", "body", "logged"),
    [
        pytest.param(500, None, "HTTP 500", id="server error"),
        pytest.param(200, "<html>not json</html>", "not JSON", id="not json"),
        pytest.param(200, '{"kys": []}', 'no "keys" list', id="not a jwks"),
        pytest.param(200, "[1, 2]", 'no "keys" list', id="a json list"),
    ],
)
async def test_jwks_fetch_failure_without_keys_refuses_with_auth_error_and_logs(
    setup: Setup, caplog: pytest.LogCaptureFixture, status: int, body: str | None, logged: str
) -> None:
    setup.state.status, setup.state.body = status, body
    async with httpx.AsyncClient() as http:
        verifier = TokenVerifier(setup.settings, http, clock=setup.clock)
        with caplog.at_level(logging.WARNING, logger="app.auth"):
            with pytest.raises(AuthError, match="could not be fetched"):
                await verifier.verify(setup.token())
            with pytest.raises(AuthError, match="could not be fetched"):
                await verifier.verify(setup.token())  # inside the quiet period: no new fetch

        assert setup.state.fetches == 1
        assert logged in caplog.text
        assert "no keys held" in caplog.text
        setup.state.status, setup.state.body = 200, None
        setup.clock.advance(MIN_REFRESH)
        await verifier.verify(setup.token())  # recovers once the quiet period is over

    assert setup.state.fetches == 2


async def test_jwks_unreachable_auth_server_refuses_with_auth_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = make_settings(auth_mode="jwks", supabase_url=f"http://127.0.0.1:{free_port()}")
    token = f"Bearer {new_key().sign(user_claims(issuer=ISSUER))}"
    async with httpx.AsyncClient() as http:
        with caplog.at_level(logging.WARNING, logger="app.auth"):
            with pytest.raises(AuthError, match="could not be fetched"):
                await TokenVerifier(settings, http).verify(token)

    assert "ConnectError" in caplog.text


async def test_jwks_hanging_auth_server_refuses_within_the_db_timeout(setup: Setup) -> None:
    setup.state.delay = 1.5
    settings = setup.settings.model_copy(update={"db_timeout_seconds": 0.2})
    async with httpx.AsyncClient() as http:
        with anyio.fail_after(1.0), pytest.raises(AuthError, match="could not be fetched"):
            await TokenVerifier(settings, http, clock=setup.clock).verify(setup.token())


async def test_jwks_symmetric_and_unusable_entries_are_ignored(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    setup.state.keys = [
        {"kty": "oct", "k": "c2VjcmV0", "kid": "shared-secret", "alg": "HS256"},
        {"kty": "EC", "crv": "P-256", "x": "bad", "y": "bad", "kid": "broken"},
        {**setup.key.public_jwk(), "kid": "encryption-key", "use": "enc"},
        "not an object",
        setup.key.public_jwk(),
    ]
    async with httpx.AsyncClient() as http:
        verifier = TokenVerifier(setup.settings, http, clock=setup.clock)
        with caplog.at_level(logging.WARNING, logger="app.auth"):
            await verifier.verify(setup.token())
        with pytest.raises(AuthError, match="no signing key for kid 'encryption-key'"):
            await verifier.verify(setup.token(kid="encryption-key"))

    assert "skipping unusable JWK kid='broken'" in caplog.text


async def test_jwks_empty_key_set_logs_a_hint_and_refuses(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    setup.state.keys = []
    async with httpx.AsyncClient() as http:
        with caplog.at_level(logging.WARNING, logger="app.auth"):
            with pytest.raises(AuthError, match="no signing key"):
                await TokenVerifier(setup.settings, http, clock=setup.clock).verify(setup.token())

    assert "AUTH_MODE=hs256" in caplog.text


@pytest.mark.parametrize("published", [1, 2], ids=["one key", "two keys"])
async def test_jwks_token_without_kid_uses_the_only_matching_key(
    setup: Setup, published: int
) -> None:
    setup.publish(*([setup.key, new_key()][:published]))
    token = f"Bearer {_sign_without_kid(setup.key)}"
    async with httpx.AsyncClient() as http:
        verifier = TokenVerifier(setup.settings, http, clock=setup.clock)
        if published == 1:
            assert (await verifier.verify(token)).claims["role"] == "authenticated"
        else:
            with pytest.raises(AuthError, match="no signing key for kid None"):
                await verifier.verify(token)


def _sign_without_kid(key: SigningKey) -> str:
    return jwt.encode(user_claims(issuer=ISSUER), key.private, algorithm="ES256")


async def test_verifier_failed_warm_up_leaves_the_first_request_free_to_fetch(
    setup: Setup,
) -> None:
    """The local stack mounts the service on Auth's own server: Auth is not up during warm-up."""
    setup.state.status = 503
    async with httpx.AsyncClient() as http:
        verifier = TokenVerifier(setup.settings, http, clock=setup.clock)
        await verifier.warm()
        setup.state.status = 200
        caller = await verifier.verify(setup.token())

    assert caller.claims["role"] == "authenticated"
    assert setup.state.fetches == 2


async def test_verifier_warm_fetches_before_the_first_request(setup: Setup) -> None:
    async with httpx.AsyncClient() as http:
        verifier = TokenVerifier(setup.settings, http, clock=setup.clock)
        await verifier.warm()
        assert setup.state.fetches == 1
        await verifier.verify(setup.token())

    assert setup.state.fetches == 1
