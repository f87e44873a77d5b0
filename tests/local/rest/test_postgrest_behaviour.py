"""PostgREST 13 behaviours the official clients lean on (docs/design.md §8), over real HTTP.

`Prefer: tx=rollback`, counts on scalar RPCs, upserts that only update, planned/estimated
counts, `max-affected` on RPC, aggregates (off by default, on via the authenticator role
setting), CSV and the disabled plan media type. The fixture schema is `embedding.sql`, in a
scratch database of this module's own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from postgrest.exceptions import APIError

from app.local.stack import LocalStack
from supabase import AsyncClient
from tests.local.rest_support import ServedDatabase, StatusLog, async_client, served_database

pytestmark = pytest.mark.anyio

FIXTURE = (Path(__file__).parent / "embedding.sql").read_text()


@pytest.fixture(scope="module")
def db(local_stack: LocalStack) -> Iterator[ServedDatabase]:
    with served_database(local_stack, FIXTURE, migrate=False) as served:
        yield served


@pytest.fixture
async def anon(
    local_stack: LocalStack, db: ServedDatabase, http: tuple[httpx.AsyncClient, StatusLog]
) -> AsyncClient:
    return await async_client(db.url, local_stack, http[0])


@pytest.fixture
def rest(local_stack: LocalStack, db: ServedDatabase) -> Iterator[httpx.Client]:
    key = local_stack.keys.anon_key
    with httpx.Client(base_url=f"{db.url}/rest/v1", headers={"apikey": key}, timeout=30) as client:
        yield client


def _status_of(db: ServedDatabase, username: str) -> str:
    with psycopg.connect(db.superuser_dsn) as conn:
        row = conn.execute("select status from public.users where username = %s", [username])
        found = row.fetchone()
        assert found is not None
        return str(found[0])


# --- Prefer: tx=rollback ----------------------------------------------------------------------
def test_prefer_tx_rollback_answers_but_does_not_persist(
    rest: httpx.Client, db: ServedDatabase
) -> None:
    res = rest.post(
        "/channels",
        json={"slug": "rolled-back"},
        headers={"Prefer": "return=representation, tx=rollback"},
    )
    assert res.status_code == 201
    assert res.json()[0]["slug"] == "rolled-back"
    assert res.headers["preference-applied"] == "return=representation, tx=rollback"
    assert rest.get("/channels", params={"slug": "eq.rolled-back"}).json() == []
    patched = rest.patch(
        "/users",
        params={"username": "eq.loner"},
        json={"status": "ONLINE"},
        headers={"Prefer": "tx=rollback"},
    )
    assert patched.status_code == 204
    assert _status_of(db, "loner") == "OFFLINE"
    committed = rest.post("/channels", json={"slug": "kept"}, headers={"Prefer": "tx=commit"})
    assert committed.headers["preference-applied"] == "tx=commit"
    assert len(rest.get("/channels", params={"slug": "eq.kept"}).json()) == 1


# --- counts -------------------------------------------------------------------------------------
async def test_scalar_rpc_with_count_exact_counts_one(anon: AsyncClient) -> None:
    res = await anon.rpc("get_status", {"name_param": "supabot"}, count="exact").execute()
    assert res.data == "ONLINE"
    assert res.count == 1


def test_scalar_rpc_content_range_is_0_0_1(rest: httpx.Client) -> None:
    res = rest.post(
        "/rpc/get_status", json={"name_param": "supabot"}, headers={"Prefer": "count=exact"}
    )
    assert res.headers["content-range"] == "0-0/1"


def test_count_planned_is_the_planner_estimate_with_206(
    rest: httpx.Client, db: ServedDatabase
) -> None:
    with psycopg.connect(db.superuser_dsn) as conn:
        plan = conn.execute("explain (format json) select 1 from public.users").fetchone()
        assert plan is not None
        estimate = plan[0][0]["Plan"]["Plan Rows"]
    assert estimate > 5  # a never-analyzed table: PostgreSQL's default guess
    res = rest.head("/users", headers={"Prefer": "count=planned"})
    assert res.status_code == 206
    assert res.headers["content-range"] == f"0-4/{estimate}"
    assert res.headers["preference-applied"] == "count=planned"


def test_count_estimated_is_exact_below_max_rows(rest: httpx.Client) -> None:
    res = rest.get("/users", params={"select": "username"}, headers={"Prefer": "count=estimated"})
    assert res.status_code == 200
    assert res.headers["content-range"] == "0-4/5"


# --- upsert ---------------------------------------------------------------------------------------
def test_upsert_that_only_updates_is_200_and_inserting_is_201(rest: httpx.Client) -> None:
    prefer = {"Prefer": "resolution=merge-duplicates, return=representation"}
    update = rest.post("/channel_details", json={"id": 1, "details": "changed"}, headers=prefer)
    assert update.status_code == 200
    assert update.json() == [{"id": 1, "details": "changed"}]
    insert = rest.post(
        "/channel_details",
        json=[{"id": 1, "details": "x"}, {"id": 2, "details": "y"}],
        headers=prefer,
    )
    assert insert.status_code == 201
    minimal = rest.post(
        "/channel_details",
        json={"id": 2, "details": "z"},
        headers={"Prefer": "resolution=merge-duplicates"},
    )
    assert minimal.status_code == 200


# --- max-affected on rpc ------------------------------------------------------------------------
def test_max_affected_on_rpc_is_pgrst124_and_rolls_back(
    rest: httpx.Client, db: ServedDatabase
) -> None:
    strict = {"Prefer": "handling=strict, max-affected=1"}
    res = rest.post("/rpc/set_users_offline", json={"name_param": "%a%"}, headers=strict)
    assert res.status_code == 400
    assert res.json() == {
        "code": "PGRST124",
        "message": "Query result exceeds max-affected preference constraint",
        "details": "The query affects 3 rows",
        "hint": None,
    }
    assert _status_of(db, "awailas") == "ONLINE"
    scalar = rest.post("/rpc/get_status", json={"name_param": "x"}, headers=strict)
    assert (scalar.status_code, scalar.json()["code"]) == (400, "PGRST128")
    within = rest.post(
        "/rpc/set_users_offline",
        json={"name_param": "dragarcia"},
        headers=strict | {"Prefer": "handling=strict, max-affected=1, tx=rollback"},
    )
    assert within.status_code == 200


# --- aggregates ---------------------------------------------------------------------------------
async def test_aggregates_are_off_by_default_with_postgrest_error(anon: AsyncClient) -> None:
    with pytest.raises(APIError) as info:
        await anon.table("users").select("status, username.count()").execute()
    assert (info.value.code, info.value.message) == (
        "PGRST123",
        "Use of aggregate functions is not allowed",
    )
    # The legacy `embed(count)` is a column reference PostgreSQL reads as count(): always on.
    res = await anon.table("channels").select("slug, messages(count)").eq("id", 3).execute()
    assert res.data == [{"slug": "empty", "messages": [{"count": 0}]}]


async def test_aggregates_when_enabled_on_the_authenticator_role(
    anon: AsyncClient, local_stack: LocalStack, db: ServedDatabase
) -> None:
    with psycopg.connect(db.superuser_dsn, autocommit=True) as conn:
        conn.execute(
            f'alter role authenticator in database "{db.name}"'
            " set pgrst.db_aggregates_enabled = 'true'"
        )
    try:
        grouped = await (
            anon.table("users").select("status, username.count()").order("status").execute()
        )
        assert grouped.data == [
            {"status": "OFFLINE", "count": 2},
            {"status": "ONLINE", "count": 3},
        ]
        total = await anon.table("users").select("total:age.sum(), age.max()").execute()
        assert total.data == [{"total": 125, "max": 40}]
        counted = await anon.table("users").select("count()").execute()
        assert counted.data == [{"count": 5}]
        embedded = await (
            anon.table("channels")
            .select("slug, messages(n:id.count(), last:created_at.max())")
            .eq("id", 1)
            .execute()
        )
        assert embedded.data == [
            {"slug": "public", "messages": [{"n": 3, "last": "2026-01-04T00:00:00+00:00"}]}
        ]
        cast = await anon.table("users").select("age.avg()::int").execute()
        assert cast.data == [{"avg": 25}]
    finally:
        with psycopg.connect(db.superuser_dsn, autocommit=True) as conn:
            conn.execute(
                f'alter role authenticator in database "{db.name}"'
                " reset pgrst.db_aggregates_enabled"
            )


# --- media types --------------------------------------------------------------------------------
def test_accept_text_csv_answers_postgrest_csv(rest: httpx.Client) -> None:
    res = rest.get(
        "/messages",
        params={"select": "id,message,username", "order": "id", "limit": "2"},
        headers={"Accept": "text/csv"},
    )
    assert res.status_code == 200
    assert res.headers["content-type"] == "text/csv; charset=utf-8"
    assert res.text == (
        'id,message,username\n1,"Hello World 👋",supabot\n2,"Perfection is attained",supabot'
    )
    empty = rest.get("/messages", params={"id": "eq.-1"}, headers={"Accept": "text/csv"})
    assert empty.text == "\n"


def test_plan_media_type_is_disabled_like_supabase(rest: httpx.Client) -> None:
    res = rest.get("/users", headers={"Accept": "application/vnd.pgrst.plan+json"})
    assert res.status_code == 406
    assert res.json()["code"] == "PGRST107"
    assert res.json()["message"] == (
        "None of these media types are available: application/vnd.pgrst.plan+json"
    )


async def test_rpc_returning_table_rows_embeds(anon: AsyncClient) -> None:
    res = await (
        anon.rpc("user_messages", {"name_param": "kiwicopple"})
        .select("id, channels(slug)")
        .execute()
    )
    assert res.data == [{"id": 4, "channels": {"slug": "public"}}]


# --- exposed schemas ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def two_schemas(local_stack: LocalStack) -> Iterator[ServedDatabase]:
    rest = {"schemas": ["public", "personal"], "plan_enabled": True}
    with served_database(local_stack, FIXTURE, migrate=False, rest=rest) as served:
        yield served


async def test_other_exposed_schema_through_profiles(
    local_stack: LocalStack,
    two_schemas: ServedDatabase,
    http: tuple[httpx.AsyncClient, StatusLog],
) -> None:
    client = await async_client(two_schemas.url, local_stack, http[0])
    personal = client.schema("personal")
    users = await personal.table("users").select("username, status, pets(name)").execute()
    assert users.data == [
        {"username": "private-bot", "status": "OFFLINE", "pets": [{"name": "rex"}]}
    ]
    await personal.table("pets").insert({"owner": "private-bot", "name": "tom"}).execute()
    pets = await personal.table("pets").select("name").order("id").execute()
    assert [p["name"] for p in pets.data] == ["rex", "tom"]
    status = await personal.rpc("get_status", {"name_param": "private-bot"}).execute()
    assert status.data == "OFFLINE"  # `users` resolved through search_path: personal first
    public = await client.table("users").select("username").eq("username", "supabot").execute()
    assert public.data == [{"username": "supabot"}]


def test_profile_headers_with_several_schemas(
    local_stack: LocalStack, two_schemas: ServedDatabase
) -> None:
    base = f"{two_schemas.url}/rest/v1"
    key = {"apikey": local_stack.keys.anon_key}
    with httpx.Client(base_url=base, headers=key, timeout=30) as rest:
        default = rest.get("/channels", params={"select": "id", "limit": "1"})
        assert default.headers["content-profile"] == "public"  # several schemas: always named
        chosen = rest.get("/users", headers={"Accept-Profile": "personal"})
        assert chosen.headers["content-profile"] == "personal"
        assert chosen.json() == [{"username": "private-bot", "status": "OFFLINE"}]
        wrong = rest.get("/users", headers={"Accept-Profile": "auth"})
        assert wrong.status_code == 406
        assert wrong.json()["hint"] == "Only the following schemas are exposed: public, personal"
        missing = rest.get("/channels", headers={"Accept-Profile": "personal"})
        assert missing.json()["message"] == (
            "Could not find the table 'personal.channels' in the schema cache"
        )


def test_single_schema_hides_the_others(rest: httpx.Client) -> None:
    res = rest.get("/users", headers={"Accept-Profile": "personal"})
    assert res.status_code == 406
    assert res.json()["hint"] == "Only the following schemas are exposed: public"
    assert "content-profile" not in rest.get("/channels").headers


async def test_requests_run_without_jit(anon: AsyncClient) -> None:
    """Nested embeds on small, fresh tables pass jit_above_cost: JIT would cost seconds."""
    assert (await anon.rpc("jit_setting", {}).execute()).data == "off"


def test_prefer_timezone_sets_the_transaction_time_zone(rest: httpx.Client) -> None:
    res = rest.get(
        "/messages",
        params={"select": "created_at", "id": "eq.1"},
        headers={"Prefer": "timezone=America/Los_Angeles"},
    )
    assert res.json() == [{"created_at": "2025-12-31T16:00:00-08:00"}]
    assert res.headers["preference-applied"] == "timezone=America/Los_Angeles"
    bad = rest.get("/messages", headers={"Prefer": "timezone=Mars/Olympus"})
    assert (bad.status_code, bad.json()["code"]) == (400, "22023")


def test_aggregates_in_to_many_spread_are_pgrst127(rest: httpx.Client, db: ServedDatabase) -> None:
    with psycopg.connect(db.superuser_dsn, autocommit=True) as conn:
        conn.execute(
            f'alter role authenticator in database "{db.name}"'
            " set pgrst.db_aggregates_enabled = 'true'"
        )
    try:
        res = rest.get("/channels", params={"select": "slug,...messages(id.sum())"})
        assert res.status_code == 400
        assert res.json()["code"] == "PGRST127"
        assert res.json()["details"] == (
            "Aggregates are not implemented for one-to-many or many-to-many spreads."
        )
    finally:
        with psycopg.connect(db.superuser_dsn, autocommit=True) as conn:
            conn.execute(
                f'alter role authenticator in database "{db.name}"'
                " reset pgrst.db_aggregates_enabled"
            )


def test_put_upserts_one_row_by_its_primary_key(rest: httpx.Client, db: ServedDatabase) -> None:
    rep = {"Prefer": "return=representation"}
    created = rest.put("/channel_details", params={"id": "eq.3"}, json={"id": 3, "details": "a"},
                       headers=rep)  # fmt: skip
    assert (created.status_code, created.json()) == (201, [{"id": 3, "details": "a"}])
    replaced = rest.put("/channel_details", params={"id": "eq.3"}, json={"id": 3, "details": "b"},
                        headers=rep)  # fmt: skip
    assert (replaced.status_code, replaced.json()) == (200, [{"id": 3, "details": "b"}])
    minimal = rest.put("/channel_details", params={"id": "eq.3"}, json={"id": 3, "details": "c"})
    assert minimal.status_code == 204
    mismatch = rest.put("/channel_details", params={"id": "eq.3"}, json={"id": 2, "details": "x"})
    assert (mismatch.status_code, mismatch.json()["code"]) == (400, "PGRST115")
    not_pk = rest.put("/channel_details", params={"details": "eq.c"}, json={"id": 3})
    assert (not_pk.status_code, not_pk.json()["code"]) == (405, "PGRST105")
    ranged = rest.put("/channel_details", params={"id": "eq.3", "limit": "1"}, json={"id": 3})
    assert (ranged.status_code, ranged.json()["code"]) == (400, "PGRST114")
    with psycopg.connect(db.superuser_dsn) as conn:
        row = conn.execute("select details from public.channel_details where id = 3").fetchone()
    assert row == ("c",)


def test_response_status_and_headers_gucs_override_the_response(rest: httpx.Client) -> None:
    res = rest.post("/rpc/teapot_with_headers", json={})
    assert res.status_code == 418
    assert res.json() == "short and stout"
    assert (res.headers["x-brew"], res.headers["cache-control"]) == ("green", "no-store")
    bad = rest.post("/rpc/bad_status", json={})
    assert (bad.status_code, bad.json()["code"]) == (500, "PGRST112")


def test_plan_media_type_when_enabled_answers_the_explain(
    local_stack: LocalStack, two_schemas: ServedDatabase
) -> None:
    base = f"{two_schemas.url}/rest/v1"
    key = {"apikey": local_stack.keys.anon_key}
    with httpx.Client(base_url=base, headers=key, timeout=30) as rest:
        res = rest.get(
            "/channels",
            params={"select": "slug,messages(id)"},
            headers={"Accept": "application/vnd.pgrst.plan+json; options=analyze|verbose"},
        )
        assert res.status_code == 200
        assert res.headers["content-type"] == (
            'application/vnd.pgrst.plan+json; for="application/json"; charset=utf-8'
        )
        plan = res.json()[0]
        assert "Plan" in plan and "Execution Time" in plan  # analyze ran it
        text = rest.get("/channels", headers={"Accept": "application/vnd.pgrst.plan+text"})
        assert text.headers["content-type"].startswith("application/vnd.pgrst.plan+text")
        assert "Scan" in text.text
        rpc = rest.post(
            "/rpc/get_status",
            json={"name_param": "supabot"},
            headers={"Accept": "application/vnd.pgrst.plan"},
        )
        assert rpc.status_code == 200 and "Plan" in rpc.json()[0]
