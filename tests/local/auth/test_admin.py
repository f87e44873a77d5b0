"""The Auth stand-in's admin API, through supabase-py's `auth.admin` and raw HTTP."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import psycopg
import pytest
from supabase_auth.errors import AuthApiError

from app.local.server import ServerThread
from app.local.stack import LocalStack
from supabase import AsyncClient, AsyncClientOptions, acreate_client

PASSWORD = "correct horse battery"


def new_email() -> str:
    return f"admin-{uuid.uuid4().hex[:12]}@example.com"


async def _client(url: str, key: str, http: httpx.AsyncClient) -> AsyncClient:
    options = AsyncClientOptions(auto_refresh_token=False, persist_session=False, httpx_client=http)
    return await acreate_client(url, key, options=options)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
async def admin(
    stack_server: ServerThread, local_stack: LocalStack, http: httpx.AsyncClient
) -> AsyncClient:
    return await _client(stack_server.url, local_stack.keys.service_role_key, http)


@pytest.fixture
async def anon(
    stack_server: ServerThread, local_stack: LocalStack, http: httpx.AsyncClient
) -> AsyncClient:
    return await _client(stack_server.url, local_stack.keys.anon_key, http)


@pytest.mark.anyio
async def test_admin_create_user_with_metadata_and_id_can_then_sign_in(
    admin: AsyncClient, anon: AsyncClient, local_stack: LocalStack
) -> None:
    email, user_id = new_email(), str(uuid.uuid4())

    created = await admin.auth.admin.create_user(
        {
            "id": user_id,
            "email": email,
            "password": PASSWORD,
            "email_confirm": True,
            "user_metadata": {"name": "Grace"},
            "app_metadata": {"plan": "pro"},
        }
    )

    user = created.user
    assert user.id == user_id
    assert user.user_metadata == {"name": "Grace"}
    assert user.app_metadata == {"provider": "email", "providers": ["email"], "plan": "pro"}
    assert user.email_confirmed_at is not None
    signed_in = await anon.auth.sign_in_with_password({"email": email, "password": PASSWORD})
    assert signed_in.user is not None and signed_in.user.id == user_id
    with psycopg.connect(local_stack.ctx.db_url) as conn:
        profile = conn.execute(
            "select display_name from public.users where id = %s", (user_id,)
        ).fetchone()
    assert profile == ("Grace",)


@pytest.mark.anyio
async def test_admin_created_user_without_email_confirm_cannot_sign_in(
    admin: AsyncClient, anon: AsyncClient
) -> None:
    email = new_email()
    await admin.auth.admin.create_user({"email": email, "password": PASSWORD})

    with pytest.raises(AuthApiError) as err:
        await anon.auth.sign_in_with_password({"email": email, "password": PASSWORD})

    assert (err.value.status, err.value.code) == (400, "email_not_confirmed")


@pytest.mark.anyio
async def test_admin_create_user_with_taken_email_is_email_exists(admin: AsyncClient) -> None:
    email = new_email()
    await admin.auth.admin.create_user({"email": email, "password": PASSWORD})

    with pytest.raises(AuthApiError) as err:
        await admin.auth.admin.create_user({"email": email, "password": PASSWORD})

    assert (err.value.status, err.value.code) == (422, "email_exists")


@pytest.mark.anyio
async def test_admin_list_users_pages_newest_first(admin: AsyncClient) -> None:
    first = (await admin.auth.admin.create_user({"email": new_email()})).user
    second = (await admin.auth.admin.create_user({"email": new_email()})).user

    page_one = await admin.auth.admin.list_users(page=1, per_page=1)
    page_two = await admin.auth.admin.list_users(page=2, per_page=1)

    assert [u.id for u in page_one] == [second.id]
    assert [u.id for u in page_two] == [first.id]


@pytest.mark.anyio
async def test_admin_list_users_includes_a_user_inserted_by_sql_without_updated_at(
    admin: AsyncClient, local_stack: LocalStack
) -> None:
    # seed.sql and analysts' scripts insert auth.users rows by hand; the column is nullable.
    user_id = uuid.uuid4()
    with psycopg.connect(local_stack.ctx.db_url) as conn:
        conn.execute(
            "insert into auth.users (id, aud, role, email, created_at, updated_at)"
            " values (%s, 'authenticated', 'authenticated', %s, now(), null)",
            (user_id, new_email()),
        )

    listed = await admin.auth.admin.list_users(page=1, per_page=1000)

    [user] = [u for u in listed if u.id == str(user_id)]
    assert user.updated_at == user.created_at


@pytest.mark.anyio
async def test_admin_get_update_and_delete_user(admin: AsyncClient, anon: AsyncClient) -> None:
    email = new_email()
    user = (
        await admin.auth.admin.create_user(
            {"email": email, "password": PASSWORD, "user_metadata": {"keep": 1, "drop": 2}}
        )
    ).user

    got = await admin.auth.admin.get_user_by_id(user.id)
    updated = await admin.auth.admin.update_user_by_id(
        user.id,
        {
            "email_confirm": True,
            "user_metadata": {"drop": None, "new": 3},
            "app_metadata": {"tier": "gold"},
            "password": "another secret",
        },
    )
    signed_in = await anon.auth.sign_in_with_password(
        {"email": email, "password": "another secret"}
    )
    await admin.auth.admin.delete_user(user.id)

    assert got.user.email == email
    assert updated.user.user_metadata == {"keep": 1, "new": 3}
    assert updated.user.app_metadata["tier"] == "gold"
    assert signed_in.session is not None
    with pytest.raises(AuthApiError) as err:
        await admin.auth.admin.get_user_by_id(user.id)
    assert (err.value.status, err.value.code) == (404, "user_not_found")
    with pytest.raises(AuthApiError) as gone:
        await anon.auth.get_user(signed_in.session.access_token)
    assert (gone.value.status, gone.value.code) == (403, "user_not_found")


@pytest.mark.anyio
async def test_admin_soft_delete_keeps_the_row_and_ends_sessions(
    admin: AsyncClient, anon: AsyncClient, local_stack: LocalStack
) -> None:
    email = new_email()
    session = (await anon.auth.sign_up({"email": email, "password": PASSWORD})).session
    assert session is not None

    await admin.auth.admin.delete_user(session.user.id, should_soft_delete=True)

    got = await admin.auth.admin.get_user_by_id(session.user.id)
    assert got.user.deleted_at is not None
    assert got.user.email != email
    with pytest.raises(AuthApiError):
        await anon.auth.sign_in_with_password({"email": email, "password": PASSWORD})
    with pytest.raises(AuthApiError) as err:
        await anon.auth.refresh_session(session.refresh_token)
    assert err.value.code == "refresh_token_not_found"
    with psycopg.connect(local_stack.ctx.db_url) as conn:
        profile = conn.execute(
            "select 1 from public.users where id = %s", (session.user.id,)
        ).fetchone()
    assert profile is not None


@pytest.mark.anyio
async def test_admin_ban_blocks_sign_in_and_refresh_until_lifted(
    admin: AsyncClient, anon: AsyncClient
) -> None:
    email = new_email()
    session = (await anon.auth.sign_up({"email": email, "password": PASSWORD})).session
    assert session is not None

    await admin.auth.admin.update_user_by_id(session.user.id, {"ban_duration": "1h"})

    with pytest.raises(AuthApiError) as sign_in:
        await anon.auth.sign_in_with_password({"email": email, "password": PASSWORD})
    assert sign_in.value.code == "user_banned"
    with pytest.raises(AuthApiError) as refresh:
        await anon.auth.refresh_session(session.refresh_token)
    assert refresh.value.code == "user_banned"
    await admin.auth.admin.update_user_by_id(session.user.id, {"ban_duration": "none"})
    assert (await anon.auth.refresh_session(session.refresh_token)).session is not None


@pytest.mark.anyio
async def test_admin_api_with_the_anon_key_is_not_admin(anon: AsyncClient) -> None:
    with pytest.raises(AuthApiError) as err:
        await anon.auth.admin.list_users()

    assert (err.value.status, err.value.code) == (403, "not_admin")


@pytest.mark.anyio
async def test_admin_api_with_a_user_token_is_not_admin(
    stack_server: ServerThread, local_stack: LocalStack, anon: AsyncClient, http: httpx.AsyncClient
) -> None:
    session = (await anon.auth.sign_up({"email": new_email(), "password": PASSWORD})).session
    assert session is not None

    res = await http.get(
        f"{stack_server.url}/auth/v1/admin/users",
        headers={
            "apikey": local_stack.keys.service_role_key,
            "Authorization": f"Bearer {session.access_token}",
            "X-Supabase-Api-Version": "2024-01-01",
        },
    )

    assert res.status_code == 403
    assert res.json() == {"code": "not_admin", "message": "User not allowed"}


@pytest.mark.anyio
async def test_admin_list_users_sends_total_count_and_link_headers(
    stack_server: ServerThread, local_stack: LocalStack, admin: AsyncClient, http: httpx.AsyncClient
) -> None:
    for _ in range(3):
        await admin.auth.admin.create_user({"email": new_email()})
    key = local_stack.keys.service_role_key

    res = await http.get(
        f"{stack_server.url}/auth/v1/admin/users",
        params={"page": "1", "per_page": "2"},
        headers={"apikey": key, "Authorization": f"Bearer {key}"},
    )

    body = res.json()
    total = int(res.headers["X-Total-Count"])
    last = -(-total // 2)
    assert res.status_code == 200
    assert body["aud"] == "authenticated"
    assert len(body["users"]) == 2
    assert total >= 3
    assert res.headers["Link"] == (
        f'</admin/users?page=2&per_page=2>; rel="next", '
        f'</admin/users?page={last}&per_page=2>; rel="last"'
    )


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/admin/users/not-a-uuid", 404, "validation_failed"),
        (f"/admin/users/{uuid.uuid4()}", 404, "user_not_found"),
    ],
)
async def test_admin_get_unknown_or_malformed_id_is_404(
    stack_server: ServerThread,
    local_stack: LocalStack,
    http: httpx.AsyncClient,
    path: str,
    status: int,
    code: str,
) -> None:
    key = local_stack.keys.service_role_key

    res = await http.get(
        f"{stack_server.url}/auth/v1{path}",
        headers={"apikey": key, "Authorization": f"Bearer {key}"},
    )

    assert res.status_code == status
    assert res.json()["error_code"] == code
    assert res.headers["x-sb-error-code"] == code
