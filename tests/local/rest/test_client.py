"""The PostgREST stand-in driven by the official async supabase-py client over real HTTP.

Runs against the session stack and its core tables (conversations, messages, usage_logs), under
their real RLS policies and grants. Every test creates its own users, so tests share nothing.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from postgrest.exceptions import APIError

from app.local.server import ServerThread
from app.local.stack import LocalStack
from supabase import AsyncClient
from tests.local.rest_support import StatusLog, User, async_client, make_user

pytestmark = pytest.mark.anyio

USAGE_ROWS: list[dict[str, Any]] = [
    {"model": "claude-a", "tokens_in": 10, "estimated": False, "price_source": None},
    {"model": "claude-b", "tokens_in": 20, "estimated": True, "price_source": "override"},
    {"model": "gpt-4o", "tokens_in": 30, "estimated": False, "price_source": "genai"},
    {"model": "GPT-mini", "tokens_in": 40, "estimated": True, "price_source": None},
    {"model": "o3", "tokens_in": 50, "estimated": False, "price_source": "genai"},
]


@pytest.fixture
def alice(local_stack: LocalStack) -> User:
    return make_user(local_stack)


@pytest.fixture
def bob(local_stack: LocalStack) -> User:
    return make_user(local_stack)


@pytest.fixture
async def as_alice(
    stack_server: ServerThread,
    local_stack: LocalStack,
    http: tuple[httpx.AsyncClient, StatusLog],
    alice: User,
) -> AsyncClient:
    return await async_client(stack_server.url, local_stack, http[0], token=alice.token)


@pytest.fixture
async def service(
    stack_server: ServerThread, local_stack: LocalStack, http: tuple[httpx.AsyncClient, StatusLog]
) -> AsyncClient:
    return await async_client(
        stack_server.url, local_stack, http[0], key=local_stack.keys.service_role_key
    )


async def _seed_usage(service: AsyncClient, owner: User) -> None:
    """Usage rows owned by `owner`: only the service writes usage (users have no INSERT)."""
    rows = [row | {"user_id": owner.id} for row in USAGE_ROWS]
    await service.table("usage_logs").insert(rows, default_to_null=False).execute()


async def test_insert_single_row_returns_representation_with_defaults(
    as_alice: AsyncClient, alice: User
) -> None:
    res = await as_alice.table("conversations").insert({"title": "first"}).execute()
    assert len(res.data) == 1
    row = res.data[0]
    assert row["title"] == "first"
    assert row["user_id"] == alice.id  # the column default auth.uid() saw the caller's claims
    uuid.UUID(row["id"])


async def test_bulk_insert_with_missing_default_uses_column_defaults(
    service: AsyncClient, alice: User
) -> None:
    rows = [
        {"user_id": alice.id, "model": "m1", "tokens_in": 1},
        {"user_id": alice.id, "model": "m2", "status": "partial"},
    ]
    res = await service.table("usage_logs").insert(rows, default_to_null=False).execute()
    by_model = {r["model"]: r for r in res.data}
    assert by_model["m1"]["status"] == "completed"  # default, key absent from this row
    assert by_model["m2"]["tokens_in"] == 0
    assert by_model["m2"]["status"] == "partial"


async def test_bulk_insert_without_missing_default_sends_null_and_fails_not_null(
    service: AsyncClient, alice: User, http: tuple[httpx.AsyncClient, StatusLog]
) -> None:
    rows = [{"user_id": alice.id, "model": "m1", "status": "partial"}, {"user_id": alice.id}]
    with pytest.raises(APIError) as err:
        await service.table("usage_logs").insert(rows).execute()
    assert err.value.code == "23502"
    assert http[1].statuses[-1] == 400


Query = Callable[[Any], Any]
FILTER_CASES: list[tuple[str, Query, set[str]]] = [
    ("eq", lambda q: q.eq("tokens_in", 20), {"claude-b"}),
    ("neq", lambda q: q.neq("model", "o3"), {"claude-a", "claude-b", "gpt-4o", "GPT-mini"}),
    ("gt", lambda q: q.gt("tokens_in", 30), {"GPT-mini", "o3"}),
    ("gte", lambda q: q.gte("tokens_in", 30), {"gpt-4o", "GPT-mini", "o3"}),
    ("lt", lambda q: q.lt("tokens_in", 20), {"claude-a"}),
    ("lte", lambda q: q.lte("tokens_in", 20), {"claude-a", "claude-b"}),
    ("like", lambda q: q.like("model", "claude%"), {"claude-a", "claude-b"}),
    ("like star", lambda q: q.like("model", "*-a"), {"claude-a"}),
    ("ilike", lambda q: q.ilike("model", "gpt%"), {"gpt-4o", "GPT-mini"}),
    ("in", lambda q: q.in_("tokens_in", [10, 50, 99]), {"claude-a", "o3"}),
    ("in quoted", lambda q: q.in_("model", ["o3", "a,b", 'q"x']), {"o3"}),
    ("is null", lambda q: q.is_("price_source", None), {"claude-a", "GPT-mini"}),
    ("is true", lambda q: q.is_("estimated", True), {"claude-b", "GPT-mini"}),
    ("is false", lambda q: q.is_("estimated", False), {"claude-a", "gpt-4o", "o3"}),
    ("not is null", lambda q: q.not_.is_("price_source", None), {"claude-b", "gpt-4o", "o3"}),
    ("not in", lambda q: q.not_.in_("tokens_in", [10, 20, 30]), {"GPT-mini", "o3"}),
    ("not eq", lambda q: q.not_.eq("estimated", True), {"claude-a", "gpt-4o", "o3"}),
    ("or", lambda q: q.or_("tokens_in.eq.10,model.eq.o3"), {"claude-a", "o3"}),
    (
        "or with nested and",
        lambda q: q.or_("tokens_in.lt.15,and(tokens_in.gt.35,estimated.is.true)"),
        {"claude-a", "GPT-mini"},
    ),
    ("not or", lambda q: q.not_.or_("tokens_in.lt.25,tokens_in.gt.45"), {"gpt-4o", "GPT-mini"}),
    (
        "two filters AND",
        lambda q: q.gt("tokens_in", 10).lt("tokens_in", 40),
        {"claude-b", "gpt-4o"},
    ),
    ("match", lambda q: q.filter("model", "match", "^claude-[ab]$"), {"claude-a", "claude-b"}),
    ("imatch", lambda q: q.filter("model", "imatch", "^gpt"), {"gpt-4o", "GPT-mini"}),
]


@pytest.mark.parametrize(
    ("name", "build", "expected"), FILTER_CASES, ids=[c[0] for c in FILTER_CASES]
)
async def test_select_filter_operator_returns_matching_rows(
    as_alice: AsyncClient,
    name: str,
    build: Query,
    expected: set[str],
    service: AsyncClient,
    alice: User,
) -> None:
    await _seed_usage(service, alice)
    res = await build(as_alice.table("usage_logs").select("model")).execute()
    assert {r["model"] for r in res.data} == expected, name


async def test_select_columns_alias_and_cast(
    as_alice: AsyncClient, service: AsyncClient, alice: User
) -> None:
    await _seed_usage(service, alice)
    res = await (
        as_alice.table("usage_logs")
        .select("name:model,tokens:tokens_in::text,cost_usd")
        .eq("model", "o3")
        .execute()
    )
    assert res.data == [{"name": "o3", "tokens": "50", "cost_usd": 0}]


async def test_order_limit_offset_and_range(
    as_alice: AsyncClient, service: AsyncClient, alice: User
) -> None:
    await _seed_usage(service, alice)
    table = as_alice.table("usage_logs")
    desc = await table.select("tokens_in").order("tokens_in", desc=True).execute()
    assert [r["tokens_in"] for r in desc.data] == [50, 40, 30, 20, 10]
    page = await table.select("tokens_in").order("tokens_in").limit(2).offset(1).execute()
    assert [r["tokens_in"] for r in page.data] == [20, 30]
    ranged = await table.select("tokens_in").order("tokens_in").range(3, 4).execute()
    assert [r["tokens_in"] for r in ranged.data] == [40, 50]
    nulls = await (
        table.select("model").order("price_source", nullsfirst=True).order("tokens_in").execute()
    )
    assert [r["model"] for r in nulls.data][:2] == ["claude-a", "GPT-mini"]


async def test_count_exact_reports_total_beyond_the_page(
    as_alice: AsyncClient,
    http: tuple[httpx.AsyncClient, StatusLog],
    service: AsyncClient,
    alice: User,
) -> None:
    await _seed_usage(service, alice)
    res = await as_alice.table("usage_logs").select("id", count="exact").limit(2).execute()
    assert res.count == 5
    assert len(res.data) == 2
    assert http[1].statuses[-1] == 206
    head = await as_alice.table("usage_logs").select("*", count="exact", head=True).execute()
    assert head.count == 5


async def test_single_returns_object_and_refuses_many(
    as_alice: AsyncClient, service: AsyncClient, alice: User
) -> None:
    await _seed_usage(service, alice)
    one = await as_alice.table("usage_logs").select("model").eq("tokens_in", 40).single().execute()
    assert one.data == {"model": "GPT-mini"}
    with pytest.raises(APIError) as err:
        await as_alice.table("usage_logs").select("model").gt("tokens_in", 10).single().execute()
    assert err.value.code == "PGRST116"


async def test_maybe_single_returns_none_or_the_row(
    as_alice: AsyncClient, service: AsyncClient, alice: User
) -> None:
    await _seed_usage(service, alice)
    none = (
        await as_alice.table("usage_logs")
        .select("model")
        .eq("model", "nope")
        .maybe_single()
        .execute()
    )
    assert none is None
    one = (
        await as_alice.table("usage_logs")
        .select("model")
        .eq("model", "o3")
        .maybe_single()
        .execute()
    )
    assert one is not None
    assert one.data == {"model": "o3"}


async def test_update_changes_only_filtered_rows(as_alice: AsyncClient) -> None:
    rows = (
        await as_alice.table("conversations").insert([{"title": "a"}, {"title": "b"}]).execute()
    ).data
    res = (
        await as_alice.table("conversations")
        .update({"title": "renamed"})
        .eq("id", rows[0]["id"])
        .execute()
    )
    assert [r["title"] for r in res.data] == ["renamed"]
    titles = await as_alice.table("conversations").select("title").order("title").execute()
    assert [r["title"] for r in titles.data] == ["b", "renamed"]


async def test_update_of_a_column_without_grant_is_403(
    as_alice: AsyncClient, http: tuple[httpx.AsyncClient, StatusLog]
) -> None:
    row = (await as_alice.table("conversations").insert({"title": "t"}).execute()).data[0]
    with pytest.raises(APIError) as err:
        await (
            as_alice.table("conversations")
            .update({"user_id": str(uuid.uuid4())})
            .eq("id", row["id"])
            .execute()
        )
    assert err.value.code == "42501"
    assert http[1].statuses[-1] == 403


async def test_delete_removes_filtered_rows_and_returns_them(as_alice: AsyncClient) -> None:
    rows = (
        await as_alice.table("conversations").insert([{"title": "x"}, {"title": "y"}]).execute()
    ).data
    res = await as_alice.table("conversations").delete().eq("title", "x").execute()
    assert [r["id"] for r in res.data] == [rows[0]["id"]]
    left = await as_alice.table("conversations").select("title").execute()
    assert [r["title"] for r in left.data] == ["y"]


async def test_upsert_merges_and_ignores_duplicates_as_service_role(
    service: AsyncClient, alice: User
) -> None:
    conv_id = str(uuid.uuid4())
    first = {"id": conv_id, "user_id": alice.id, "title": "v1"}
    await service.table("conversations").upsert(first).execute()
    merged = (
        await service.table("conversations")
        .upsert(first | {"title": "v2"}, on_conflict="id")
        .execute()
    )
    assert [r["title"] for r in merged.data] == ["v2"]
    ignored = (
        await service.table("conversations")
        .upsert(first | {"title": "v3"}, on_conflict="id", ignore_duplicates=True)
        .execute()
    )
    assert ignored.data == []
    now = await service.table("conversations").select("title").eq("id", conv_id).single().execute()
    assert now.data == {"title": "v2"}


async def test_anon_insert_is_denied_with_401(
    stack_server: ServerThread, local_stack: LocalStack, http: tuple[httpx.AsyncClient, StatusLog]
) -> None:
    anon = await async_client(stack_server.url, local_stack, http[0])
    with pytest.raises(APIError) as err:
        await anon.table("conversations").insert({"title": "nope"}).execute()
    assert err.value.code == "42501"
    assert http[1].statuses[-1] == 401


async def test_insert_in_another_users_name_is_denied_with_403(
    stack_server: ServerThread,
    local_stack: LocalStack,
    http: tuple[httpx.AsyncClient, StatusLog],
    alice: User,
    bob: User,
) -> None:
    as_bob = await async_client(stack_server.url, local_stack, http[0], token=bob.token)
    with pytest.raises(APIError) as err:
        await (
            as_bob.table("conversations")
            .insert({"user_id": alice.id, "title": "planted"})
            .execute()
        )
    assert err.value.code == "42501"
    assert "row-level security" in (err.value.message or "")
    assert http[1].statuses[-1] == 403


async def test_another_users_rows_are_invisible_and_untouchable(
    stack_server: ServerThread,
    local_stack: LocalStack,
    http: tuple[httpx.AsyncClient, StatusLog],
    as_alice: AsyncClient,
    bob: User,
) -> None:
    conv = (await as_alice.table("conversations").insert({"title": "mine"}).execute()).data[0]
    as_bob = await async_client(stack_server.url, local_stack, http[0], token=bob.token)
    seen = await as_bob.table("conversations").select("*").eq("id", conv["id"]).execute()
    assert seen.data == []
    updated = (
        await as_bob.table("conversations")
        .update({"title": "stolen"})
        .eq("id", conv["id"])
        .execute()
    )
    assert updated.data == []
    deleted = await as_bob.table("conversations").delete().eq("id", conv["id"]).execute()
    assert deleted.data == []
    still = (
        await as_alice.table("conversations")
        .select("title")
        .eq("id", conv["id"])
        .single()
        .execute()
    )
    assert still.data == {"title": "mine"}


async def test_service_role_sees_every_users_rows(
    stack_server: ServerThread,
    local_stack: LocalStack,
    http: tuple[httpx.AsyncClient, StatusLog],
    as_alice: AsyncClient,
    bob: User,
    alice: User,
    service: AsyncClient,
) -> None:
    as_bob = await async_client(stack_server.url, local_stack, http[0], token=bob.token)
    await as_alice.table("conversations").insert({"title": "alice's"}).execute()
    await as_bob.table("conversations").insert({"title": "bob's"}).execute()
    res = (
        await service.table("conversations")
        .select("user_id,title")
        .in_("user_id", [alice.id, bob.id])
        .execute()
    )
    assert {(r["user_id"], r["title"]) for r in res.data} == {
        (alice.id, "alice's"),
        (bob.id, "bob's"),
    }


async def test_two_users_concurrently_each_see_only_their_own_rows(
    stack_server: ServerThread, local_stack: LocalStack, alice: User, bob: User
) -> None:
    async with httpx.AsyncClient(timeout=30) as shared:
        clients = {
            u.id: await async_client(stack_server.url, local_stack, shared, token=u.token)
            for u in (alice, bob)
        }

        async def work(user: User) -> None:
            client = clients[user.id]
            for i in range(15):
                await client.table("conversations").insert({"title": f"{user.id}-{i}"}).execute()
                rows = (await client.table("conversations").select("user_id,title").execute()).data
                assert {r["user_id"] for r in rows} == {user.id}
                assert len(rows) == i + 1

        await asyncio.gather(work(alice), work(bob))
