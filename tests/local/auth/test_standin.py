"""The Auth stand-in driven by the official supabase-py client (async and sync) over real HTTP.

Every test signs up its own users (uuid emails): the session database is shared by all tests.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import jwt
import psycopg
import pytest
from supabase_auth.errors import AuthApiError, AuthWeakPasswordError

from app.local.auth.mail import mailbox_of
from app.local.server import ServerThread
from app.local.stack import LocalStack
from supabase import (
    AsyncClient,
    AsyncClientOptions,
    Client,
    ClientOptions,
    acreate_client,
    create_client,
)

PASSWORD = "correct horse battery"


def new_email() -> str:
    return f"user-{uuid.uuid4().hex[:12]}@example.com"


@pytest.fixture
async def anon(stack_server: ServerThread, local_stack: LocalStack) -> AsyncIterator[AsyncClient]:
    """An async client with the anon key, no background refresh, its own HTTP pool."""
    async with httpx.AsyncClient() as http:
        options = AsyncClientOptions(
            auto_refresh_token=False, persist_session=True, httpx_client=http
        )
        yield await acreate_client(stack_server.url, local_stack.keys.anon_key, options=options)


@pytest.fixture
async def admin(stack_server: ServerThread, local_stack: LocalStack) -> AsyncIterator[AsyncClient]:
    async with httpx.AsyncClient() as http:
        options = AsyncClientOptions(
            auto_refresh_token=False, persist_session=False, httpx_client=http
        )
        yield await acreate_client(
            stack_server.url, local_stack.keys.service_role_key, options=options
        )


@pytest.fixture
def sync_anon(stack_server: ServerThread, local_stack: LocalStack) -> Iterator[Client]:
    with httpx.Client() as http:
        options = ClientOptions(auto_refresh_token=False, persist_session=True, httpx_client=http)
        yield create_client(stack_server.url, local_stack.keys.anon_key, options=options)


def _profile_email(local_stack: LocalStack, user_id: str) -> str | None:
    with psycopg.connect(local_stack.ctx.db_url) as conn:
        row = conn.execute("select email from public.users where id = %s", (user_id,)).fetchone()
    return row[0] if row else None


# --- sign-up and sign-in -------------------------------------------------------------------------
@pytest.mark.anyio
async def test_sign_up_returns_session_and_trigger_creates_profile(
    anon: AsyncClient, local_stack: LocalStack
) -> None:
    email = new_email()

    res = await anon.auth.sign_up(
        {"email": email, "password": PASSWORD, "options": {"data": {"display_name": "Ada"}}}
    )

    assert res.session is not None
    assert res.user is not None
    assert res.user.email == email
    assert res.user.user_metadata == {"display_name": "Ada"}
    assert res.user.app_metadata == {"provider": "email", "providers": ["email"]}
    assert res.user.email_confirmed_at is not None
    assert res.user.identities and res.user.identities[0].provider == "email"
    assert res.session.expires_in == 3600
    assert _profile_email(local_stack, res.user.id) == email
    with psycopg.connect(local_stack.ctx.db_url) as conn:
        name = conn.execute(
            "select display_name from public.users where id = %s", (res.user.id,)
        ).fetchone()
    assert name == ("Ada",)


@pytest.mark.anyio
async def test_sign_up_access_token_carries_supabase_claims_and_verifies_by_jwks(
    anon: AsyncClient, local_stack: LocalStack, stack_server: ServerThread
) -> None:
    email = new_email()
    res = await anon.auth.sign_up({"email": email, "password": PASSWORD})
    assert res.session is not None

    header = jwt.get_unverified_header(res.session.access_token)
    claims = (await anon.auth.get_claims(res.session.access_token))["claims"]  # verified by JWKS

    assert header["alg"] == "ES256"
    assert header["kid"] == local_stack.keys.kid
    assert claims["sub"] == res.session.user.id
    assert claims["email"] == email
    assert claims["aud"] == "authenticated"
    assert claims["role"] == "authenticated"
    assert claims["iss"] == f"{local_stack.ctx.api_url}/auth/v1"
    assert claims["exp"] == res.session.expires_at
    assert claims["session_id"]
    assert stack_server.url == local_stack.ctx.api_url


@pytest.mark.anyio
async def test_sign_up_with_taken_email_is_refused_user_already_exists(anon: AsyncClient) -> None:
    email = new_email()
    await anon.auth.sign_up({"email": email, "password": PASSWORD})

    with pytest.raises(AuthApiError) as err:
        await anon.auth.sign_up({"email": email.upper(), "password": PASSWORD})

    assert err.value.status == 422
    assert err.value.code == "user_already_exists"


@pytest.mark.anyio
async def test_sign_up_with_short_password_raises_weak_password_with_reasons(
    anon: AsyncClient,
) -> None:
    with pytest.raises(AuthWeakPasswordError) as err:
        await anon.auth.sign_up({"email": new_email(), "password": "12345"})

    assert err.value.status == 422
    assert err.value.code == "weak_password"
    assert err.value.reasons == ["length"]


@pytest.mark.anyio
async def test_sign_in_with_password_opens_a_new_session(anon: AsyncClient) -> None:
    email = new_email()
    first = await anon.auth.sign_up({"email": email, "password": PASSWORD})

    res = await anon.auth.sign_in_with_password({"email": email, "password": PASSWORD})

    assert res.session is not None and first.session is not None
    assert res.user is not None and res.user.last_sign_in_at is not None
    assert res.session.refresh_token != first.session.refresh_token
    first_sid = jwt.decode(first.session.access_token, options={"verify_signature": False})
    second_sid = jwt.decode(res.session.access_token, options={"verify_signature": False})
    assert first_sid["session_id"] != second_sid["session_id"]


@pytest.mark.anyio
@pytest.mark.parametrize("known_email", [True, False], ids=["wrong-password", "unknown-user"])
async def test_sign_in_bad_credentials_is_invalid_credentials_either_way(
    anon: AsyncClient, known_email: bool
) -> None:
    email = new_email()
    if known_email:
        await anon.auth.sign_up({"email": email, "password": PASSWORD})

    with pytest.raises(AuthApiError) as err:
        await anon.auth.sign_in_with_password({"email": email, "password": "wrong password"})

    assert (err.value.status, err.value.code) == (400, "invalid_credentials")
    assert err.value.message == "Invalid login credentials"


# --- refresh -------------------------------------------------------------------------------------
@pytest.mark.anyio
async def test_refresh_rotates_and_a_spent_refresh_token_gives_back_its_child(
    anon: AsyncClient,
) -> None:
    res = await anon.auth.sign_up({"email": new_email(), "password": PASSWORD})
    assert res.session is not None
    spent = res.session.refresh_token

    refreshed = await anon.auth.refresh_session(spent)

    assert refreshed.session is not None
    assert refreshed.session.refresh_token != spent
    assert refreshed.session.access_token != res.session.access_token
    again = await anon.auth.refresh_session(spent)  # GoTrue: the active child, not a new one
    assert again.session is not None
    assert again.session.refresh_token == refreshed.session.refresh_token


@pytest.mark.anyio
async def test_reusing_a_spent_refresh_token_revokes_the_whole_family(
    anon: AsyncClient, local_stack: LocalStack
) -> None:
    res = await anon.auth.sign_up({"email": new_email(), "password": PASSWORD})
    assert res.session is not None
    spent = res.session.refresh_token
    child = await anon.auth.refresh_session(spent)
    assert child.session is not None
    current = await anon.auth.refresh_session(child.session.refresh_token)
    assert current.session is not None
    with psycopg.connect(local_stack.ctx.db_url, autocommit=True) as conn:  # past the interval
        conn.execute(
            "update auth.refresh_tokens set updated_at = now() - interval '1 minute'"
            " where token = %s",
            (spent,),
        )

    with pytest.raises(AuthApiError):
        await anon.auth.refresh_session(spent)  # a thief replays the old token

    with pytest.raises(AuthApiError) as err:
        await anon.auth.refresh_session(current.session.refresh_token)
    assert err.value.code == "refresh_token_already_used"


@pytest.mark.anyio
async def test_refresh_with_unknown_token_is_refresh_token_not_found(anon: AsyncClient) -> None:
    with pytest.raises(AuthApiError) as err:
        await anon.auth.refresh_session("no-such-token")

    assert (err.value.status, err.value.code) == (400, "refresh_token_not_found")


# --- user ----------------------------------------------------------------------------------------
@pytest.mark.anyio
async def test_get_user_returns_the_signed_in_user(anon: AsyncClient) -> None:
    email = new_email()
    res = await anon.auth.sign_up({"email": email, "password": PASSWORD})
    assert res.session is not None

    got = await anon.auth.get_user(res.session.access_token)

    assert got is not None
    assert got.user.id == res.session.user.id
    assert got.user.email == email
    assert got.user.aud == "authenticated"


@pytest.mark.anyio
async def test_update_user_merges_metadata_and_changes_password(anon: AsyncClient) -> None:
    email = new_email()
    await anon.auth.sign_up(
        {"email": email, "password": PASSWORD, "options": {"data": {"a": 1, "b": 2}}}
    )

    updated = await anon.auth.update_user({"data": {"b": None, "c": 3}, "password": "new secret"})

    assert updated.user.user_metadata == {"a": 1, "c": 3}
    with pytest.raises(AuthApiError):
        await anon.auth.sign_in_with_password({"email": email, "password": PASSWORD})
    again = await anon.auth.sign_in_with_password({"email": email, "password": "new secret"})
    assert again.user is not None and again.user.user_metadata == {"a": 1, "c": 3}


@pytest.mark.anyio
async def test_update_user_with_the_same_password_is_same_password(anon: AsyncClient) -> None:
    await anon.auth.sign_up({"email": new_email(), "password": PASSWORD})

    with pytest.raises(AuthApiError) as err:
        await anon.auth.update_user({"password": PASSWORD})

    assert (err.value.status, err.value.code) == (422, "same_password")


@pytest.mark.anyio
async def test_update_user_email_waits_for_the_mailed_link(
    anon: AsyncClient, local_stack: LocalStack
) -> None:
    """GoTrue: a permanent user always confirms a new email by mail, even with autoconfirm
    (then either address's link is enough)."""
    email = new_email()
    await anon.auth.sign_up({"email": email, "password": PASSWORD})
    other = new_email()

    updated = await anon.auth.update_user({"email": other})

    assert updated.user.email == email and updated.user.new_email == other
    mail = mailbox_of(local_stack.ctx).latest(other, "email_change")
    assert mail is not None
    assert mailbox_of(local_stack.ctx).latest(email, "email_change") is not None
    await anon.auth.verify_otp({"token_hash": mail.token_hash, "type": "email_change"})
    res = await anon.auth.sign_in_with_password({"email": other, "password": PASSWORD})
    assert res.user is not None and res.user.identities
    assert res.user.identities[0].identity_data["email"] == other


@pytest.mark.anyio
async def test_password_change_ends_the_users_other_sessions(anon: AsyncClient) -> None:
    email = new_email()
    other_device = await anon.auth.sign_up({"email": email, "password": PASSWORD})
    await anon.auth.sign_in_with_password({"email": email, "password": PASSWORD})
    assert other_device.session is not None

    await anon.auth.update_user({"password": "brand new secret"})

    with pytest.raises(AuthApiError) as err:
        await anon.auth.get_user(other_device.session.access_token)
    assert (err.value.status, err.value.code) == (403, "session_not_found")
    assert await anon.auth.get_user() is not None  # this session lives on


# --- sign out and sessions -----------------------------------------------------------------------
@pytest.mark.anyio
async def test_sign_out_revokes_refresh_and_user_is_session_not_found(anon: AsyncClient) -> None:
    res = await anon.auth.sign_up({"email": new_email(), "password": PASSWORD})
    assert res.session is not None

    await anon.auth.sign_out()

    with pytest.raises(AuthApiError) as refresh_err:
        await anon.auth.refresh_session(res.session.refresh_token)
    assert refresh_err.value.code == "refresh_token_not_found"
    with pytest.raises(AuthApiError) as user_err:
        await anon.auth.get_user(res.session.access_token)
    assert (user_err.value.status, user_err.value.code) == (403, "session_not_found")


@pytest.mark.anyio
async def test_two_sessions_of_one_user_are_independent_local_logout_ends_one(
    anon: AsyncClient, admin: AsyncClient
) -> None:
    email = new_email()
    laptop = await anon.auth.sign_up({"email": email, "password": PASSWORD})
    phone = await anon.auth.sign_in_with_password({"email": email, "password": PASSWORD})
    assert laptop.session is not None and phone.session is not None

    await admin.auth.admin.sign_out(laptop.session.access_token, "local")

    with pytest.raises(AuthApiError):
        await anon.auth.get_user(laptop.session.access_token)
    with pytest.raises(AuthApiError):
        await anon.auth.refresh_session(laptop.session.refresh_token)
    assert (await anon.auth.get_user(phone.session.access_token)) is not None
    assert (await anon.auth.refresh_session(phone.session.refresh_token)).session is not None


@pytest.mark.anyio
async def test_global_sign_out_ends_every_session_of_the_user(
    anon: AsyncClient, admin: AsyncClient
) -> None:
    email = new_email()
    laptop = await anon.auth.sign_up({"email": email, "password": PASSWORD})
    phone = await anon.auth.sign_in_with_password({"email": email, "password": PASSWORD})
    assert laptop.session is not None and phone.session is not None

    await admin.auth.admin.sign_out(laptop.session.access_token, "global")

    for session in (laptop.session, phone.session):
        with pytest.raises(AuthApiError) as err:
            await anon.auth.refresh_session(session.refresh_token)
        assert err.value.code == "refresh_token_not_found"


# --- sync client ---------------------------------------------------------------------------------
def test_sync_client_signs_up_in_out_refreshes_and_updates(sync_anon: Client) -> None:
    email = new_email()
    signed_up = sync_anon.auth.sign_up({"email": email, "password": PASSWORD})
    assert signed_up.session is not None
    with pytest.raises(AuthApiError) as dup:
        sync_anon.auth.sign_up({"email": email, "password": PASSWORD})
    assert dup.value.code == "user_already_exists"
    with pytest.raises(AuthApiError) as wrong:
        sync_anon.auth.sign_in_with_password({"email": email, "password": "nope nope"})
    assert wrong.value.code == "invalid_credentials"

    signed_in = sync_anon.auth.sign_in_with_password({"email": email, "password": PASSWORD})
    assert signed_in.session is not None
    user = sync_anon.auth.get_user()
    assert user is not None and user.user.email == email
    updated = sync_anon.auth.update_user({"data": {"plan": "pro"}})
    assert updated.user.user_metadata == {"plan": "pro"}
    refreshed = sync_anon.auth.refresh_session()
    assert refreshed.session is not None
    replayed = sync_anon.auth.refresh_session(signed_in.session.refresh_token)
    assert replayed.session is not None
    assert replayed.session.refresh_token == refreshed.session.refresh_token

    sync_anon.auth.sign_out()

    assert sync_anon.auth.get_session() is None
    with pytest.raises(AuthApiError) as after:
        sync_anon.auth.get_user(refreshed.session.access_token)
    assert after.value.code == "session_not_found"
