"""GoTrue's protections in the Auth stand-in: the refresh-token reuse interval, per-IP rate limits
from `[auth.rate_limit]`, sign-in timing that hides whether an email exists, anonymous sign-in
and the body cap — over real HTTP, with supabase-py where the official client has the call.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator
from typing import Any

import bcrypt
import httpx
import psycopg
import pytest
from supabase_auth.errors import AuthApiError

from app.local.auth import passwords
from app.local.auth.config import AuthConfig, RateLimits
from app.local.server import ServerThread
from app.local.stack import LocalStack
from supabase import AsyncClient, AsyncClientOptions, acreate_client
from tests.support.auth_standin import StandinFactory

PASSWORD = "correct horse battery"
V2024 = {"X-Supabase-Api-Version": "2024-01-01"}
# GoTrue limits per address only when GOTRUE_RATE_LIMIT_HEADER names a header: the limit tests
# configure one and send it (a proxy's X-Forwarded-For).
RATE_LIMIT_HEADER = "X-Forwarded-For"
CLIENT_IP = {RATE_LIMIT_HEADER: "203.0.113.7, 10.0.0.1"}


def new_email() -> str:
    return f"hard-{uuid.uuid4().hex[:12]}@example.com"


@pytest.fixture
async def anon(stack_server: ServerThread, local_stack: LocalStack) -> AsyncIterator[AsyncClient]:
    async with httpx.AsyncClient() as http:
        options = AsyncClientOptions(
            auto_refresh_token=False, persist_session=False, httpx_client=http
        )
        yield await acreate_client(stack_server.url, local_stack.keys.anon_key, options=options)


async def _client_for(url: str, key: str, http: httpx.AsyncClient) -> AsyncClient:
    options = AsyncClientOptions(auto_refresh_token=False, persist_session=False, httpx_client=http)
    return await acreate_client(url, key, options=options)


def _backdate_spend(local_stack: LocalStack, token: str, seconds: int) -> None:
    """Move a spent token's revocation `seconds` into the past (no sleeping in tests)."""
    with psycopg.connect(local_stack.ctx.db_url, autocommit=True) as conn:
        conn.execute(
            "update auth.refresh_tokens set updated_at = updated_at - make_interval(secs => %s)"
            " where token = %s",
            (seconds, token),
        )


# --- refresh-token reuse interval ----------------------------------------------------------------
@pytest.mark.anyio
async def test_refresh_reusing_the_parent_of_the_active_token_returns_that_token(
    anon: AsyncClient,
) -> None:
    res = await anon.auth.sign_up({"email": new_email(), "password": PASSWORD})
    assert res.session is not None
    first = await anon.auth.refresh_session(res.session.refresh_token)
    assert first.session is not None

    again = await anon.auth.refresh_session(res.session.refresh_token)

    assert again.session is not None
    assert again.session.refresh_token == first.session.refresh_token
    assert (await anon.auth.refresh_session(first.session.refresh_token)).session is not None


@pytest.mark.anyio
async def test_refresh_reuse_within_interval_of_an_older_token_issues_a_valid_session(
    anon: AsyncClient,
) -> None:
    res = await anon.auth.sign_up({"email": new_email(), "password": PASSWORD})
    assert res.session is not None
    child = await anon.auth.refresh_session(res.session.refresh_token)
    assert child.session is not None
    grandchild = await anon.auth.refresh_session(child.session.refresh_token)
    assert grandchild.session is not None

    replay = await anon.auth.refresh_session(res.session.refresh_token)  # a tab 50 ms late

    assert replay.session is not None
    assert (await anon.auth.refresh_session(replay.session.refresh_token)).session is not None


@pytest.mark.anyio
async def test_refresh_twenty_concurrent_refreshes_all_succeed_and_the_winner_stays_valid(
    stack_server: ServerThread, local_stack: LocalStack
) -> None:
    headers = {"apikey": local_stack.keys.anon_key}
    async with httpx.AsyncClient(base_url=f"{stack_server.url}/auth/v1", headers=headers) as http:
        signed = await http.post("/signup", json={"email": new_email(), "password": PASSWORD})
        token = signed.json()["refresh_token"]

        answers = await asyncio.gather(
            *(
                http.post("/token?grant_type=refresh_token", json={"refresh_token": token})
                for _ in range(20)
            )
        )

        assert [a.status_code for a in answers] == [200] * 20, [a.text for a in answers]
        issued = {a.json()["refresh_token"] for a in answers}
        assert len(issued) == 1  # all got the winner's child, none was burnt
        follow = await http.post(
            "/token?grant_type=refresh_token", json={"refresh_token": issued.pop()}
        )
        assert follow.status_code == 200, follow.text


@pytest.mark.anyio
async def test_refresh_reuse_after_the_interval_revokes_the_whole_family(
    anon: AsyncClient, local_stack: LocalStack
) -> None:
    res = await anon.auth.sign_up({"email": new_email(), "password": PASSWORD})
    assert res.session is not None
    child = await anon.auth.refresh_session(res.session.refresh_token)
    assert child.session is not None
    current = await anon.auth.refresh_session(child.session.refresh_token)
    assert current.session is not None
    _backdate_spend(local_stack, res.session.refresh_token, 11)

    with pytest.raises(AuthApiError) as replay:
        await anon.auth.refresh_session(res.session.refresh_token)  # a thief, 11 s later
    with pytest.raises(AuthApiError) as after:
        await anon.auth.refresh_session(current.session.refresh_token)

    assert (replay.value.status, replay.value.code) == (400, "refresh_token_already_used")
    assert replay.value.message == "Invalid Refresh Token: Already Used"
    assert after.value.code == "refresh_token_already_used"


@pytest.mark.anyio
async def test_refresh_reuse_interval_comes_from_the_config(
    standin: StandinFactory, local_stack: LocalStack, project_config: AuthConfig
) -> None:
    server = standin(project_config.without_rate_limits().replace(refresh_token_reuse_interval=0))
    async with httpx.AsyncClient() as http:
        client = await _client_for(server.url, local_stack.keys.anon_key, http)
        res = await client.auth.sign_up({"email": new_email(), "password": PASSWORD})
        assert res.session is not None
        child = await client.auth.refresh_session(res.session.refresh_token)
        assert child.session is not None
        assert (await client.auth.refresh_session(child.session.refresh_token)).session
        _backdate_spend(local_stack, res.session.refresh_token, 1)

        with pytest.raises(AuthApiError) as err:
            await client.auth.refresh_session(res.session.refresh_token)

    assert err.value.code == "refresh_token_already_used"


# --- rate limits ---------------------------------------------------------------------------------
def _limited(config: AuthConfig, header: str = RATE_LIMIT_HEADER, **limits: int) -> AuthConfig:
    return config.replace(rate_limit=RateLimits(**limits, header=header))


@pytest.mark.anyio
async def test_rate_limit_wrong_passwords_past_the_token_budget_are_429(
    standin: StandinFactory, local_stack: LocalStack, project_config: AuthConfig
) -> None:
    server = standin(_limited(project_config, token_refresh=5))
    headers = {"apikey": local_stack.keys.anon_key} | V2024 | CLIENT_IP
    body = {"email": new_email(), "password": "wrong wrong"}
    async with httpx.AsyncClient(base_url=f"{server.url}/auth/v1", headers=headers) as http:
        answers = [await http.post("/token?grant_type=password", json=body) for _ in range(7)]

    assert [a.status_code for a in answers] == [400] * 5 + [429] * 2
    assert answers[-1].json() == {
        "code": "over_request_rate_limit",
        "message": "Request rate limit reached",
    }
    assert answers[-1].headers["x-sb-error-code"] == "over_request_rate_limit"


@pytest.mark.anyio
async def test_rate_limit_sign_ups_use_sign_in_sign_ups_from_config(
    standin: StandinFactory, local_stack: LocalStack, project_config: AuthConfig
) -> None:
    server = standin(_limited(project_config, sign_in_sign_ups=3))
    async with httpx.AsyncClient(headers=CLIENT_IP) as http:
        client = await _client_for(server.url, local_stack.keys.anon_key, http)
        for _ in range(3):
            await client.auth.sign_up({"email": new_email(), "password": PASSWORD})

        with pytest.raises(AuthApiError) as err:
            await client.auth.sign_up({"email": new_email(), "password": PASSWORD})

    assert (err.value.status, err.value.code) == (429, "over_request_rate_limit")


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("header", "sent"),
    [("", CLIENT_IP), (RATE_LIMIT_HEADER, {})],
    ids=["no-header-configured", "header-not-sent"],
)
async def test_rate_limit_per_address_applies_only_with_a_configured_header_it_carries(
    standin: StandinFactory,
    local_stack: LocalStack,
    project_config: AuthConfig,
    header: str,
    sent: dict[str, str],
) -> None:
    """As GoTrue: no GOTRUE_RATE_LIMIT_HEADER (the CLI's stack), or a request without it, is not
    limited per address. auth-js's suite signs up 66 users from one address."""
    server = standin(_limited(project_config, header=header, sign_in_sign_ups=3))
    async with httpx.AsyncClient(headers=sent) as http:
        client = await _client_for(server.url, local_stack.keys.anon_key, http)
        for _ in range(6):
            res = await client.auth.sign_up({"email": new_email(), "password": PASSWORD})
            assert res.session is not None


@pytest.mark.anyio
async def test_rate_limit_keys_on_the_first_address_of_the_header(
    standin: StandinFactory, local_stack: LocalStack, project_config: AuthConfig
) -> None:
    server = standin(_limited(project_config, sign_in_sign_ups=1))
    body = {"password": PASSWORD}
    async with httpx.AsyncClient(base_url=f"{server.url}/auth/v1") as http:
        headers = {"apikey": local_stack.keys.anon_key}

        async def sign_up(address: str) -> int:
            res = await http.post(
                "/signup",
                json=body | {"email": new_email()},
                headers=headers | {RATE_LIMIT_HEADER: address},
            )
            return res.status_code

        first = await sign_up("198.51.100.1, 10.0.0.1")
        same = await sign_up("198.51.100.1, 10.0.0.2")
        other = await sign_up("198.51.100.2, 10.0.0.1")

    assert (first, same, other) == (200, 429, 200)


@pytest.mark.anyio
async def test_rate_limit_refreshes_use_token_refresh_from_config(
    standin: StandinFactory, local_stack: LocalStack, project_config: AuthConfig
) -> None:
    server = standin(_limited(project_config, token_refresh=2))
    async with httpx.AsyncClient(headers=CLIENT_IP) as http:
        client = await _client_for(server.url, local_stack.keys.anon_key, http)
        res = await client.auth.sign_up({"email": new_email(), "password": PASSWORD})
        assert res.session is not None
        token = res.session.refresh_token
        for _ in range(2):
            refreshed = await client.auth.refresh_session(token)
            assert refreshed.session is not None
            token = refreshed.session.refresh_token

        with pytest.raises(AuthApiError) as err:
            await client.auth.refresh_session(token)

    assert (err.value.status, err.value.code) == (429, "over_request_rate_limit")


def test_rate_limit_project_config_declares_every_gotrue_bucket(
    project_config: AuthConfig,
) -> None:
    limits = project_config.rate_limit

    assert limits.enabled
    assert (limits.sign_in_sign_ups, limits.token_refresh, limits.token_verifications) == (
        30,
        150,
        30,
    )
    assert limits.anonymous_users == 30
    assert project_config.refresh_token_reuse_interval == 10


# --- sign-in timing ------------------------------------------------------------------------------
@pytest.mark.anyio
async def test_sign_in_unknown_email_spends_a_bcrypt_compare_like_a_known_one(
    anon: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    known = new_email()
    await anon.auth.sign_up({"email": known, "password": PASSWORD})
    calls: list[bytes] = []
    real = bcrypt.checkpw

    def counting(password: bytes, hashed: bytes) -> bool:
        calls.append(hashed)
        return real(password, hashed)

    monkeypatch.setattr(passwords.bcrypt, "checkpw", counting)

    for email in (known, new_email()):
        with pytest.raises(AuthApiError) as err:
            await anon.auth.sign_in_with_password({"email": email, "password": "wrong wrong"})
        assert err.value.code == "invalid_credentials"

    assert len(calls) == 2  # one real compare for the known email, one dummy for the unknown
    assert all(h.startswith(b"$2b$10$") for h in calls)  # the same cost for both


@pytest.mark.anyio
async def test_sign_in_unknown_email_takes_about_as_long_as_a_wrong_password(
    stack_server: ServerThread, local_stack: LocalStack
) -> None:
    """Medians of 5 tries each; an unknown email must cost at least a third of a known one
    (before the fix: ~3 ms against ~90 ms, a 30x gap), a bound scheduling noise cannot cross."""
    headers = {"apikey": local_stack.keys.anon_key}
    known = new_email()
    async with httpx.AsyncClient(base_url=f"{stack_server.url}/auth/v1", headers=headers) as http:
        await http.post("/signup", json={"email": known, "password": PASSWORD})

        async def median(email: str) -> float:
            spent: list[float] = []
            for _ in range(5):
                res = await http.post(
                    "/token?grant_type=password", json={"email": email, "password": "nope nope"}
                )
                assert res.status_code == 400
                spent.append(res.elapsed.total_seconds())
            return sorted(spent)[2]

        known_time = await median(known)
        unknown_time = await median(new_email())

    assert unknown_time > known_time / 3, (known_time, unknown_time)


# --- anonymous sign-in ---------------------------------------------------------------------------
@pytest.mark.anyio
async def test_sign_in_anonymously_disabled_by_default_is_gotrue_422(anon: AsyncClient) -> None:
    with pytest.raises(AuthApiError) as err:
        await anon.auth.sign_in_anonymously()

    assert (err.value.status, err.value.code) == (422, "anonymous_provider_disabled")
    assert err.value.message == "Anonymous sign-ins are disabled"


@pytest.mark.anyio
async def test_sign_in_anonymously_enabled_gives_an_anonymous_session(
    standin: StandinFactory, local_stack: LocalStack, project_config: AuthConfig
) -> None:
    server = standin(project_config.replace(enable_anonymous_sign_ins=True))
    async with httpx.AsyncClient() as http:
        client = await _client_for(server.url, local_stack.keys.anon_key, http)

        res = await client.auth.sign_in_anonymously({"options": {"data": {"nick": "owl"}}})
        assert res.session is not None and res.user is not None
        claims: dict[str, Any] = (await client.auth.get_claims(res.session.access_token))["claims"]
        me = await client.auth.get_user(res.session.access_token)
        refreshed = await client.auth.refresh_session(res.session.refresh_token)

    assert res.user.is_anonymous is True
    assert res.user.email in ("", None)
    assert res.user.identities == []
    assert res.user.user_metadata == {"nick": "owl"}
    assert claims["is_anonymous"] is True
    assert claims["role"] == "authenticated"
    assert claims["amr"][0]["method"] == "anonymous"
    assert me is not None and me.user.is_anonymous is True
    assert refreshed.session is not None


@pytest.mark.anyio
async def test_anonymous_user_adding_email_and_password_becomes_permanent(
    standin: StandinFactory, local_stack: LocalStack, project_config: AuthConfig
) -> None:
    server = standin(project_config.replace(enable_anonymous_sign_ins=True))
    email = new_email()
    async with httpx.AsyncClient() as http:
        options = AsyncClientOptions(
            auto_refresh_token=False, persist_session=True, httpx_client=http
        )
        client = await acreate_client(server.url, local_stack.keys.anon_key, options=options)
        await client.auth.sign_in_anonymously()
        with pytest.raises(AuthApiError) as password_only:
            await client.auth.update_user({"password": PASSWORD})

        upgraded = await client.auth.update_user({"email": email, "password": PASSWORD})
        signed = await client.auth.sign_in_with_password({"email": email, "password": PASSWORD})

    assert (password_only.value.status, password_only.value.code) == (422, "validation_failed")
    assert upgraded.user.is_anonymous is False and upgraded.user.email == email
    assert signed.user is not None and signed.user.identities
    assert signed.user.app_metadata["provider"] == "email"


@pytest.mark.anyio
async def test_sign_in_anonymously_rate_limited_by_anonymous_users(
    standin: StandinFactory, local_stack: LocalStack, project_config: AuthConfig
) -> None:
    config = _limited(project_config, anonymous_users=2)
    server = standin(config.replace(enable_anonymous_sign_ins=True))
    async with httpx.AsyncClient(headers=CLIENT_IP) as http:
        client = await _client_for(server.url, local_stack.keys.anon_key, http)
        for _ in range(2):
            await client.auth.sign_in_anonymously()

        with pytest.raises(AuthApiError) as err:
            await client.auth.sign_in_anonymously()

    assert (err.value.status, err.value.code) == (429, "over_request_rate_limit")


# --- body cap ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/user"),
        ("GET", "/settings"),
        ("POST", "/logout"),
        ("GET", "/admin/users"),
        ("POST", "/no/such/route"),
        ("POST", "/signup"),
    ],
)
def test_body_cap_applies_to_every_route_even_those_that_read_no_body(
    stack_server: ServerThread, local_stack: LocalStack, method: str, path: str
) -> None:
    headers = {"apikey": local_stack.keys.anon_key}
    with httpx.Client(base_url=f"{stack_server.url}/auth/v1", headers=headers) as http:
        declared = http.request(method, path, content=b"x" * 600_000)

        def chunks() -> Any:
            for _ in range(40):
                yield b"y" * 16_384

        chunked = http.request(method, path, content=chunks())

    assert declared.status_code == 413, declared.text
    assert declared.json()["error_code"] == "request_too_large"
    if method == "POST" and path == "/signup":  # only a route that reads can see a chunked body
        assert chunked.status_code == 413, chunked.text
    else:
        assert chunked.status_code < 500


@pytest.mark.anyio
async def test_settings_follow_the_config(
    standin: StandinFactory, project_config: AuthConfig
) -> None:
    email = dataclasses.replace(project_config.email, enable_confirmations=True)
    server = standin(project_config.replace(enable_anonymous_sign_ins=True, email=email))

    async with httpx.AsyncClient() as http:
        body = (await http.get(f"{server.url}/auth/v1/settings")).json()

    assert body["mailer_autoconfirm"] is False
    assert body["external"]["anonymous_users"] is True
    assert body["disable_signup"] is False
