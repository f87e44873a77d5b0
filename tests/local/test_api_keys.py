"""The 2026 API keys on the local stack: supabase-py created with `sb_publishable_…` or
`sb_secret_…` only, and the gateway's mapping of them, over real HTTP.

Every test signs up its own users (uuid emails): the session database is shared by all tests.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import jwt
import pytest
from postgrest.exceptions import APIError
from supabase_auth.errors import AuthApiError

from app.local import signing_keys
from app.local.keys import DEFAULT_PUBLISHABLE_KEY, DEFAULT_SECRET_KEY
from app.local.server import ServerThread
from app.local.stack import LocalStack
from supabase import AsyncClient, AsyncClientOptions, acreate_client

PASSWORD = "correct horse battery"
BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 Safari/605.1.15"


def new_email() -> str:
    return f"keys-{uuid.uuid4().hex[:12]}@example.com"


async def _client(url: str, key: str, http: httpx.AsyncClient) -> AsyncClient:
    options = AsyncClientOptions(auto_refresh_token=False, persist_session=True, httpx_client=http)
    return await acreate_client(url, key, options=options)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


async def _user_with_conversation(url: str, http: httpx.AsyncClient) -> tuple[str, str]:
    """A user signed up with the publishable key only, and a conversation it wrote."""
    client = await _client(url, DEFAULT_PUBLISHABLE_KEY, http)
    signed = await client.auth.sign_up({"email": new_email(), "password": PASSWORD})
    assert signed.user is not None and signed.session is not None
    title = f"t-{uuid.uuid4().hex[:8]}"
    await client.table("conversations").insert({"title": title}).execute()
    return signed.user.id, title


def test_local_keys_default_to_the_clis_fixed_values(local_stack: LocalStack) -> None:
    assert local_stack.keys.publishable_key == "sb_publishable_ACJWlzQHlZjBrEguHvfOxg_3BJgxAaH"
    assert local_stack.keys.secret_key == "sb_secret_N7UND0UgjKTVK-Uodkm0Hg_xSvEMPvz"


@pytest.mark.anyio
async def test_publishable_key_client_signs_up_and_reads_only_its_own_rows(
    stack_server: ServerThread, http: httpx.AsyncClient
) -> None:
    other_id, other_title = await _user_with_conversation(stack_server.url, http)
    client = await _client(stack_server.url, DEFAULT_PUBLISHABLE_KEY, http)
    signed = await client.auth.sign_up({"email": new_email(), "password": PASSWORD})
    assert signed.user is not None
    await client.table("conversations").insert({"title": "mine"}).execute()

    rows = (await client.table("conversations").select("user_id,title").execute()).data

    assert rows == [{"user_id": signed.user.id, "title": "mine"}]
    assert other_id != signed.user.id and other_title not in {r["title"] for r in rows}


@pytest.mark.anyio
async def test_secret_key_in_apikey_alone_reads_every_users_rows_and_lists_users(
    stack_server: ServerThread, http: httpx.AsyncClient
) -> None:
    first_id, first_title = await _user_with_conversation(stack_server.url, http)
    second_id, second_title = await _user_with_conversation(stack_server.url, http)

    headers = {"apikey": DEFAULT_SECRET_KEY}  # no Authorization at all
    res = await http.get(
        f"{stack_server.url}/rest/v1/conversations",
        params={"select": "user_id,title", "user_id": f"in.({first_id},{second_id})"},
        headers=headers,
    )
    users = await http.get(
        f"{stack_server.url}/auth/v1/admin/users", params={"per_page": 1000}, headers=headers
    )

    assert res.status_code == 200
    assert {(r["user_id"], r["title"]) for r in res.json()} == {
        (first_id, first_title),
        (second_id, second_title),
    }
    assert users.status_code == 200
    assert {first_id, second_id} <= {u["id"] for u in users.json()["users"]}


@pytest.mark.anyio
async def test_secret_key_client_of_supabase_py_is_the_service_role(
    stack_server: ServerThread, http: httpx.AsyncClient
) -> None:
    """supabase-py also sends the key as `Authorization: Bearer sb_secret_…`: dropped, mapped."""
    user_id, title = await _user_with_conversation(stack_server.url, http)
    admin = await _client(stack_server.url, DEFAULT_SECRET_KEY, http)

    rows = (
        await admin.table("conversations").select("title").eq("user_id", user_id).execute()
    ).data
    listed = await admin.auth.admin.list_users(per_page=1000)

    assert rows == [{"title": title}]
    assert user_id in {u.id for u in listed}


@pytest.mark.anyio
async def test_publishable_key_cannot_read_others_rows_nor_list_users(
    stack_server: ServerThread, http: httpx.AsyncClient
) -> None:
    user_id, _ = await _user_with_conversation(stack_server.url, http)
    anon = await _client(stack_server.url, DEFAULT_PUBLISHABLE_KEY, http)

    with pytest.raises(APIError) as no_rows:  # the anon role has no grant on the table
        await anon.table("conversations").select("title").eq("user_id", user_id).execute()
    with pytest.raises(AuthApiError) as refused:
        await anon.auth.admin.list_users()

    assert no_rows.value.code == "42501"
    assert refused.value.status == 403 and refused.value.code == "not_admin"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("key", "status", "code"),
    [(DEFAULT_PUBLISHABLE_KEY, 401, "42501"), (DEFAULT_SECRET_KEY, 200, None)],
)
async def test_gateway_drops_a_bearer_sb_key_instead_of_forwarding_it(
    stack_server: ServerThread, http: httpx.AsyncClient, key: str, status: int, code: str | None
) -> None:
    """Forwarded as-is, PostgREST would answer PGRST301 ("Expected 3 parts in JWT")."""
    res = await http.get(
        f"{stack_server.url}/rest/v1/conversations",
        params={"limit": 1},
        headers={"apikey": key, "Authorization": f"Bearer {key}"},
    )
    assert res.status_code == status
    assert (res.json().get("code") if status != 200 else None) == code  # anon: the grant says no


@pytest.mark.anyio
async def test_gateway_maps_the_secret_key_in_the_query_string(
    stack_server: ServerThread, http: httpx.AsyncClient
) -> None:
    user_id, title = await _user_with_conversation(stack_server.url, http)
    res = await http.get(
        f"{stack_server.url}/rest/v1/conversations",
        params={"apikey": DEFAULT_SECRET_KEY, "select": "title", "user_id": f"eq.{user_id}"},
    )
    assert res.status_code == 200 and res.json() == [{"title": title}]


@pytest.mark.anyio
@pytest.mark.parametrize(
    "path", ["/rest/v1/conversations", "/auth/v1/admin/users", "/auth/v1/settings"]
)
async def test_secret_key_from_a_browser_user_agent_is_refused_401(
    stack_server: ServerThread, http: httpx.AsyncClient, path: str
) -> None:
    res = await http.get(
        f"{stack_server.url}{path}", headers={"apikey": DEFAULT_SECRET_KEY, "User-Agent": BROWSER}
    )
    assert res.status_code == 401
    assert res.json()["message"] == "Forbidden use of secret API key in browser"


@pytest.mark.anyio
async def test_publishable_key_from_a_browser_user_agent_is_served(
    stack_server: ServerThread, http: httpx.AsyncClient
) -> None:
    res = await http.get(
        f"{stack_server.url}/auth/v1/settings",
        headers={"apikey": DEFAULT_PUBLISHABLE_KEY, "User-Agent": BROWSER},
    )
    assert res.status_code == 200 and "external" in res.json()


@pytest.mark.anyio
async def test_an_unknown_sb_key_is_invalid_api_key(
    stack_server: ServerThread, http: httpx.AsyncClient
) -> None:
    res = await http.get(
        f"{stack_server.url}/rest/v1/conversations", headers={"apikey": "sb_secret_not-this-one"}
    )
    assert res.status_code == 401 and res.json()["message"] == "Invalid API key"


@pytest.mark.anyio
async def test_publishable_key_client_gets_api_errors_not_500s_on_a_bad_filter(
    stack_server: ServerThread, http: httpx.AsyncClient
) -> None:
    client = await _client(stack_server.url, DEFAULT_PUBLISHABLE_KEY, http)
    with pytest.raises(APIError) as bad:
        await client.table("conversations").select("nope").execute()
    assert bad.value.code == "42703"


def _minted(local_stack: LocalStack, how: str, role: str = "anon") -> str:
    """A legacy API key the client signed itself (auth-js's suite mints its keys so)."""
    claims = {"iss": "supabase-demo", "role": role, "exp": 1983812996, "iat": 1768925145}
    if how == "signing key":
        return local_stack.keys.sign_access_token(claims)
    if how == "legacy secret":
        return jwt.encode(claims, local_stack.keys.jwt_secret, algorithm="HS256")
    foreign = signing_keys.generate("ES256")
    return jwt.encode(
        claims,
        signing_keys.private_key(foreign),
        algorithm="ES256",
        headers={"kid": foreign["kid"]},
    )


@pytest.mark.anyio
@pytest.mark.parametrize("how", ["signing key", "legacy secret"])
async def test_a_legacy_key_minted_with_the_stacks_keys_is_served_on_auth_and_rest(
    local_stack: LocalStack, stack_server: ServerThread, http: httpx.AsyncClient, how: str
) -> None:
    """Not the stack's own string, but signed by its keys with role anon: it stands for itself."""
    key = _minted(local_stack, how)
    assert key not in local_stack.ctx.api_keys()

    signup = await http.post(
        f"{stack_server.url}/auth/v1/signup",
        json={"email": new_email(), "password": PASSWORD},
        headers={"apikey": key},
    )
    assert signup.status_code == 200, signup.text
    rows = await http.get(
        f"{stack_server.url}/rest/v1/conversations",
        params={"limit": 1},
        headers={"apikey": key, "Authorization": f"Bearer {signup.json()['access_token']}"},
    )

    assert rows.status_code == 200 and rows.json() == []


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("how", "role"), [("foreign key", "anon"), ("signing key", "authenticated")]
)
async def test_a_minted_key_signed_elsewhere_or_for_another_role_is_invalid(
    local_stack: LocalStack,
    stack_server: ServerThread,
    http: httpx.AsyncClient,
    how: str,
    role: str,
) -> None:
    key = _minted(local_stack, how, role)
    for path in ("/auth/v1/signup", "/rest/v1/conversations"):
        res = await http.post(f"{stack_server.url}{path}", json={}, headers={"apikey": key})
        assert res.status_code == 401 and res.json()["message"] == "Invalid API key", path
