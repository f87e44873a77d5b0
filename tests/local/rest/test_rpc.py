"""`/rpc/<fn>` through supabase-py (async and sync), plus the sync client on tables.

The functions live in a database of their own (`served_database`), served by a second gateway,
so the session database's `public` schema keeps only the migrations' objects.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import psycopg
import pytest
from postgrest.exceptions import APIError

from app.local.stack import LocalStack
from supabase import AsyncClient
from tests.local.rest_support import (
    FIXTURE_SQL,
    ServedDatabase,
    StatusLog,
    User,
    async_client,
    make_user,
    served_database,
    sync_client,
)


@pytest.fixture(scope="module")
def fixture_db(local_stack: LocalStack) -> Iterator[ServedDatabase]:
    with served_database(local_stack, FIXTURE_SQL) as db:
        yield db


@pytest.fixture
def carol(local_stack: LocalStack, fixture_db: ServedDatabase) -> User:
    return make_user(local_stack, fixture_db.superuser_dsn)


@pytest.fixture
async def as_carol(
    local_stack: LocalStack,
    fixture_db: ServedDatabase,
    http: tuple[httpx.AsyncClient, StatusLog],
    carol: User,
) -> AsyncClient:
    return await async_client(fixture_db.url, local_stack, http[0], token=carol.token)


@pytest.mark.anyio
async def test_rpc_scalar_with_named_args_and_defaults(as_carol: AsyncClient) -> None:
    assert (await as_carol.rpc("add_them", {"a": 1, "b": 2}).execute()).data == 3
    assert (await as_carol.rpc("add_them", {"a": 1}).execute()).data == 11
    assert (await as_carol.rpc("add_them", {"a": 5}, get=True).execute()).data == 15


@pytest.mark.anyio
async def test_rpc_set_returning_accepts_select_filters_order_limit(as_carol: AsyncClient) -> None:
    await (
        as_carol.table("items")
        .insert([{"name": n, "qty": q} for n, q in [("a", 1), ("b", 2), ("c", 3)]])
        .execute()
    )
    rows = (await as_carol.rpc("my_items", {}).execute()).data
    assert [r["name"] for r in rows] == ["a", "b", "c"]
    shaped = await (
        as_carol.rpc("my_items", {})
        .select("name")
        .gte("qty", 2)
        .order("qty", desc=True)
        .limit(1)
        .execute()
    )
    assert shaped.data == [{"name": "c"}]


@pytest.mark.anyio
async def test_rpc_table_function_and_setof_scalar(as_carol: AsyncClient) -> None:
    table = await as_carol.rpc("squares", {"n": 3}).execute()
    assert table.data == [{"x": 1, "sq": 1}, {"x": 2, "sq": 4}, {"x": 3, "sq": 9}]
    scalars = await as_carol.rpc("series", {"n": 3}, get=True).execute()
    assert scalars.data == [1, 2, 3]
    counted = await as_carol.rpc("squares", {"n": 10}, count="exact").gt("sq", 50).execute()
    assert counted.count == 3


@pytest.mark.anyio
async def test_rpc_single_composite_is_an_object(as_carol: AsyncClient) -> None:
    await as_carol.table("items").insert({"name": "only"}).execute()
    res = await as_carol.rpc("first_item", {}).execute()
    assert isinstance(res.data, dict)
    assert res.data["name"] == "only"


@pytest.mark.anyio
async def test_rpc_void_is_204_and_writes(
    as_carol: AsyncClient, http: tuple[httpx.AsyncClient, StatusLog]
) -> None:
    res = await as_carol.rpc("touch", {"note": "hello"}).execute()
    assert res.data == []
    assert http[1].statuses[-1] == 204
    rows = await as_carol.table("items").select("name,note").eq("name", "touched").execute()
    assert rows.data == [{"name": "touched", "note": "hello"}]


@pytest.mark.anyio
async def test_rpc_single_unnamed_jsonb_argument_receives_the_whole_body(
    as_carol: AsyncClient,
) -> None:
    body = {"any": [1, {"nested": True}], "n": None}
    assert (await as_carol.rpc("echo", body).execute()).data == body


@pytest.mark.anyio
async def test_rpc_runs_with_postgrest_request_settings(as_carol: AsyncClient, carol: User) -> None:
    info = (await as_carol.rpc("request_info", {}).execute()).data
    assert info["role"] == "authenticated"
    assert info["claims"]["sub"] == carol.id
    assert info["claims"]["role"] == "authenticated"
    assert info["method"] == "POST"
    assert info["path"] == "/rpc/request_info"
    assert info["search_path"] == '"public", "extensions"'
    assert info["read_only"] == "on"  # STABLE → READ ONLY transaction
    assert info["statement_timeout"] == "8s"  # the authenticated role's own setting
    assert "cookie" not in info["headers"]
    assert info["headers"]["accept-profile"] == "public"  # lower-cased names


@pytest.mark.anyio
async def test_rpc_get_on_a_writing_function_is_read_only_405(
    as_carol: AsyncClient, http: tuple[httpx.AsyncClient, StatusLog]
) -> None:
    with pytest.raises(APIError) as err:
        await as_carol.rpc("touch", {"note": "x"}, get=True).execute()
    assert err.value.code == "25006"
    assert http[1].statuses[-1] == 405
    with pytest.raises(APIError) as err:
        await as_carol.rpc("sneaky_write", {}).execute()  # STABLE but writes
    assert err.value.code == "25006"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("fn", "params", "code", "status"),
    [
        ("nope", {}, "PGRST202", 404),
        ("add_them", {"zzz": 1}, "PGRST202", 404),
        ("add_them", {}, "PGRST202", 404),  # a required argument is missing
        ("overloaded", {"a": 1}, "PGRST203", 300),
        ("fail", {"msg": "custom"}, "P0001", 400),
        ("teapot", {}, "PT418", 418),
        ("add_them", {"a": "not a number"}, "22P02", 400),
    ],
)
async def test_rpc_errors_have_postgrest_codes_and_statuses(
    as_carol: AsyncClient,
    http: tuple[httpx.AsyncClient, StatusLog],
    fn: str,
    params: dict[str, object],
    code: str,
    status: int,
) -> None:
    with pytest.raises(APIError) as err:
        await as_carol.rpc(fn, params).execute()
    assert err.value.code == code
    assert http[1].statuses[-1] == status


@pytest.mark.anyio
async def test_raise_exception_carries_message_detail_and_hint(as_carol: AsyncClient) -> None:
    with pytest.raises(APIError) as err:
        await as_carol.rpc("fail", {"msg": "custom"}).execute()
    assert (err.value.message, err.value.details, err.value.hint) == (
        "custom",
        "from fail()",
        "try again",
    )


@pytest.mark.anyio
async def test_upsert_on_a_unique_column_merges_or_ignores(as_carol: AsyncClient) -> None:
    items = as_carol.table("items")
    await items.insert({"sku": "A-1", "name": "first", "qty": 1}).execute()
    merged = await items.upsert({"sku": "A-1", "name": "second"}, on_conflict="sku").execute()
    assert [(r["name"], r["qty"]) for r in merged.data] == [("second", 1)]
    await items.upsert(
        {"sku": "A-1", "name": "third"}, on_conflict="sku", ignore_duplicates=True
    ).execute()
    now = await items.select("name").eq("sku", "A-1").single().execute()
    assert now.data == {"name": "second"}


@pytest.mark.anyio
async def test_array_json_and_full_text_filters(as_carol: AsyncClient) -> None:
    items = as_carol.table("items")
    await items.insert(
        [
            {"name": "x", "tags": ["red", "big"], "meta": {"k": 1}, "note": "the quick brown fox"},
            {"name": "y", "tags": ["blue"], "meta": {"k": 2}, "note": "lazy dogs sleep"},
        ]
    ).execute()
    assert [
        r["name"] for r in (await items.select("name").contains("tags", ["red"]).execute()).data
    ] == ["x"]
    assert [
        r["name"]
        for r in (await items.select("name").overlaps("tags", ["blue", "z"]).execute()).data
    ] == ["y"]
    assert [
        r["name"]
        for r in (await items.select("name").contained_by("tags", ["blue", "z"]).execute()).data
    ] == ["y"]
    assert [
        r["name"] for r in (await items.select("name").contains("meta", {"k": 2}).execute()).data
    ] == ["y"]
    fts = (
        await items.select("name")
        .text_search("doc", "quick & fox", {"config": "english"})
        .execute()
    )
    assert [r["name"] for r in fts.data] == ["x"]
    plain = await items.select("name").text_search("note", "dogs", {"type": "plain"}).execute()
    assert [r["name"] for r in plain.data] == ["y"]
    path = await items.select("name,k:meta->>k").eq("meta->>k", "2").execute()
    assert path.data == [{"name": "y", "k": "2"}]


@pytest.mark.anyio
async def test_tables_created_after_startup_are_found(
    as_carol: AsyncClient, fixture_db: ServedDatabase
) -> None:
    assert (await as_carol.table("items").select("id").limit(1).execute()).data is not None
    with psycopg.connect(fixture_db.dsn, autocommit=True) as conn:
        conn.execute("create table public.late (id int primary key, label text)")
        conn.execute("grant select, insert on public.late to authenticated")
    await as_carol.table("late").insert({"id": 1, "label": "hi"}).execute()
    assert (await as_carol.table("late").select("label").execute()).data == [{"label": "hi"}]
    with psycopg.connect(fixture_db.dsn, autocommit=True) as conn:
        conn.execute("alter table public.late add column extra text default 'e'")
    res = await as_carol.table("late").select("extra").eq("extra", "e").execute()
    assert res.data == [{"extra": "e"}]


def test_sync_client_crud_and_rpc(local_stack: LocalStack, fixture_db: ServedDatabase) -> None:
    user = make_user(local_stack, fixture_db.superuser_dsn)
    with httpx.Client(timeout=30) as http:
        client = sync_client(fixture_db.url, local_stack, http, token=user.token)
        items = client.table("items")
        inserted = items.insert([{"name": "s1", "qty": 1}, {"name": "s2", "qty": 2}]).execute()
        assert [r["owner"] for r in inserted.data] == [user.id, user.id]
        assert items.select("name").gt("qty", 1).execute().data == [{"name": "s2"}]
        assert items.update({"qty": 5}).eq("name", "s1").execute().data[0]["qty"] == 5
        assert items.select("qty").eq("name", "s1").single().execute().data == {"qty": 5}
        assert items.select("qty").eq("name", "none").maybe_single().execute() is None
        assert len(items.delete().eq("name", "s2").execute().data) == 1
        counted = items.select("*", count="exact").execute()
        assert counted.count == 1
        assert client.rpc("add_them", {"a": 2, "b": 3}).execute().data == 5
        assert client.rpc("squares", {"n": 2}).execute().data == [
            {"x": 1, "sq": 1},
            {"x": 2, "sq": 4},
        ]
        with pytest.raises(APIError) as err:
            client.rpc("nope", {}).execute()
        assert err.value.code == "PGRST202"
