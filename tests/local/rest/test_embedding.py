"""Resource embedding driven by the official async supabase-py client over real HTTP.

The fixture schema (`embedding.sql`, shaped like postgrest-js's test schema) lives in a scratch
database of its own, served by a second gateway. One test embeds on the real project schema.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from postgrest.exceptions import APIError

from app.local.server import ServerThread
from app.local.stack import LocalStack
from supabase import AsyncClient
from tests.local.rest_support import (
    ServedDatabase,
    StatusLog,
    User,
    async_client,
    make_user,
    served_database,
)

pytestmark = pytest.mark.anyio

FIXTURE = (Path(__file__).parent / "embedding.sql").read_text()


@pytest.fixture(scope="module")
def embed_db(local_stack: LocalStack) -> Iterator[ServedDatabase]:
    with served_database(local_stack, FIXTURE, migrate=False) as db:
        yield db


@pytest.fixture
async def anon(
    local_stack: LocalStack, embed_db: ServedDatabase, http: tuple[httpx.AsyncClient, StatusLog]
) -> AsyncClient:
    return await async_client(embed_db.url, local_stack, http[0])


async def _error(query: Any) -> dict[str, Any]:
    with pytest.raises(APIError) as info:
        await query.execute()
    err = info.value
    return {"code": err.code, "message": err.message, "details": err.details, "hint": err.hint}


# --- kinds of relationship --------------------------------------------------------------------
async def test_embed_many_to_one_is_an_object(anon: AsyncClient) -> None:
    res = await anon.table("messages").select("id, users(username, status)").order("id").execute()
    assert res.data[0] == {"id": 1, "users": {"username": "supabot", "status": "ONLINE"}}
    assert res.data[3]["users"] == {"username": "kiwicopple", "status": "OFFLINE"}


async def test_embed_aliased_as_a_column_of_star_replaces_that_column(anon: AsyncClient) -> None:
    """postgrest-js: `best_friends!first_user(*, first_user:users!first_user(*))` — inside the
    embed the alias names the column too, and the embedded row is what PostgREST returns."""
    res = (
        await anon.table("users")
        .select("first_friend_of:best_friends!first_user(*, first_user:users!first_user(username))")
        .eq("username", "supabot")
        .execute()
    )
    friends = res.data[0]["first_friend_of"]
    assert friends and all(f["first_user"] == {"username": "supabot"} for f in friends)


async def test_embed_one_to_many_is_an_array_empty_when_none(anon: AsyncClient) -> None:
    res = await anon.table("channels").select("slug, messages(id)").order("id").execute()
    assert res.data == [
        {"slug": "public", "messages": [{"id": 1}, {"id": 3}, {"id": 4}]},
        {"slug": "random", "messages": [{"id": 2}]},
        {"slug": "empty", "messages": []},
    ]


async def test_embed_zero_to_one_is_null_when_missing(anon: AsyncClient) -> None:
    res = await (
        anon.table("channels").select("slug, channel_details(details)").order("id").execute()
    )
    assert res.data[0]["channel_details"] == {"details": "the public channel"}
    assert res.data[1]["channel_details"] is None
    back = await anon.table("channel_details").select("id, channels(slug)").execute()
    assert back.data == [{"id": 1, "channels": {"slug": "public"}}]


async def test_embed_many_to_many_through_junction(anon: AsyncClient) -> None:
    res = await (
        anon.table("channels")
        .select("slug, users(username)")
        .order("id")
        .order("username", foreign_table="users")
        .execute()
    )
    assert res.data == [
        {"slug": "public", "users": [{"username": "kiwicopple"}, {"username": "supabot"}]},
        {"slug": "random", "users": [{"username": "supabot"}]},
        {"slug": "empty", "users": []},
    ]
    back = await (
        anon.table("users").select("username, channels(slug)").eq("username", "supabot").execute()
    )
    assert sorted(c["slug"] for c in back.data[0]["channels"]) == ["public", "random"]


async def test_embed_self_reference_parent_and_children(anon: AsyncClient) -> None:
    res = await (
        anon.table("collections")
        .select("description, parent:parent_id(description), children:collections(description)")
        .order("id")
        .execute()
    )
    assert res.data[0] == {
        "description": "root",
        "parent": None,
        "children": [{"description": "child a"}, {"description": "child b"}],
    }
    assert res.data[3] == {
        "description": "grandchild",
        "parent": {"description": "child a"},
        "children": [],
    }


async def test_embed_through_views_follows_base_table_keys(anon: AsyncClient) -> None:
    res = await (
        anon.table("recent_messages").select("id, author, users(status)").eq("id", 4).execute()
    )
    assert res.data == [{"id": 4, "author": "kiwicopple", "users": {"status": "OFFLINE"}}]
    nested = await (
        anon.table("recent_messages_v2").select("id, users(username)").eq("id", 1).execute()
    )
    assert nested.data == [{"id": 1, "users": {"username": "supabot"}}]
    to_view = await (
        anon.table("users")
        .select("username, recent_messages(id)")
        .eq("username", "kiwicopple")
        .execute()
    )
    assert to_view.data == [{"username": "kiwicopple", "recent_messages": [{"id": 4}]}]
    view_to_view = await (
        anon.table("active_users")
        .select("name, recent_messages(id)")
        .eq("name", "supabot")
        .execute()
    )
    assert [m["id"] for m in view_to_view.data[0]["recent_messages"]] == [1, 2, 3]


# --- hints, aliases, joins --------------------------------------------------------------------
async def test_embed_ambiguous_is_pgrst201_with_candidate_list(anon: AsyncClient) -> None:
    err = await _error(anon.table("best_friends").select("users(username)"))
    assert err["code"] == "PGRST201"
    assert err["message"] == (
        "Could not embed because more than one relationship was found for 'best_friends' "
        "and 'users'"
    )
    assert err["details"] == [
        {
            "cardinality": "many-to-one",
            "embedding": "best_friends with users",
            "relationship": (
                f"best_friends_{col}_fkey using best_friends({col}) and users(username)"
            ),
        }
        for col in ("first_user", "second_user", "third_wheel")
    ]
    assert err["hint"] == (
        "Try changing 'users' to one of the following: 'users!best_friends_first_user_fkey', "
        "'users!best_friends_second_user_fkey', 'users!best_friends_third_wheel_fkey'. "
        "Find the desired relationship in the 'details' key."
    )


async def test_embed_fk_and_column_hints_with_aliases(anon: AsyncClient) -> None:
    res = await (
        anon.table("best_friends")
        .select(
            "id, first:users!best_friends_first_user_fkey(username),"
            " second:users!second_user(username), third:third_wheel(username)"
        )
        .order("id")
        .execute()
    )
    assert res.data == [
        {
            "id": 1,
            "first": {"username": "supabot"},
            "second": {"username": "kiwicopple"},
            "third": {"username": "awailas"},
        },
        {
            "id": 2,
            "first": {"username": "supabot"},
            "second": {"username": "dragarcia"},
            "third": None,
        },
    ]


async def test_embed_inner_join_drops_parents_without_match(anon: AsyncClient) -> None:
    left = await anon.table("channels").select("slug, messages(id)").execute()
    inner = await anon.table("channels").select("slug, messages!inner(id)").execute()
    assert len(left.data) == 3
    assert sorted(r["slug"] for r in inner.data) == ["public", "random"]
    to_one = await anon.table("best_friends").select("id, third_wheel!inner(username)").execute()
    assert [r["id"] for r in to_one.data] == [1]
    explicit_left = await anon.table("channels").select("slug, messages!left(id)").execute()
    assert len(explicit_left.data) == 3


async def test_embed_filter_on_inner_embed_filters_parents(anon: AsyncClient) -> None:
    res = await (
        anon.table("messages")
        .select("id, users!inner(status)")
        .eq("users.status", "OFFLINE")
        .execute()
    )
    assert res.data == [{"id": 4, "users": {"status": "OFFLINE"}}]


async def test_embed_nested_three_levels(anon: AsyncClient) -> None:
    res = await (
        anon.table("users")
        .select("username, messages(id, channels(slug, channel_details(details)))")
        .eq("username", "supabot")
        .order("id", foreign_table="messages")
        .execute()
    )
    messages = res.data[0]["messages"]
    assert messages[0] == {
        "id": 1,
        "channels": {"slug": "public", "channel_details": {"details": "the public channel"}},
    }
    assert messages[1]["channels"] == {"slug": "random", "channel_details": None}


async def test_embed_order_limit_offset_and_filters_inside(anon: AsyncClient) -> None:
    latest = await (
        anon.table("channels")
        .select("slug, messages(id, message)")
        .eq("id", 1)
        .order("created_at", desc=True, foreign_table="messages")
        .limit(1, foreign_table="messages")
        .execute()
    )
    assert latest.data == [{"slug": "public", "messages": [{"id": 4, "message": "hi"}]}]
    offset = await (
        anon.table("channels")
        .select("messages(id)")
        .eq("id", 1)
        .order("id", foreign_table="messages")
        .range(1, 2, foreign_table="messages")
        .execute()
    )
    assert offset.data == [{"messages": [{"id": 3}, {"id": 4}]}]
    filtered = await (
        anon.table("channels")
        .select("slug, messages(id)")
        .eq("id", 1)
        .eq("messages.username", "kiwicopple")
        .execute()
    )
    assert filtered.data == [{"slug": "public", "messages": [{"id": 4}]}]
    either = await (
        anon.table("channels")
        .select("messages(id)")
        .eq("id", 1)
        .or_("id.eq.1,id.eq.4", reference_table="messages")
        .order("id", foreign_table="messages")
        .execute()
    )
    assert either.data == [{"messages": [{"id": 1}, {"id": 4}]}]


async def test_embed_null_filter_on_embed_acts_as_anti_join(anon: AsyncClient) -> None:
    res = await (
        anon.table("channels").select("slug, messages(id)").is_("messages", "null").execute()
    )
    assert res.data == [{"slug": "empty", "messages": []}]
    present = await (
        anon.table("channels")
        .select("slug, channel_details(id)")
        .not_.is_("channel_details", "null")
        .execute()
    )
    assert present.data == [{"slug": "public", "channel_details": {"id": 1}}]


async def test_embed_related_order_on_to_one(anon: AsyncClient) -> None:
    res = await (
        anon.table("messages")
        .select("id, users(username)")
        .order("users(username)")
        .order("id")
        .execute()
    )
    assert [r["users"]["username"] for r in res.data] == [
        "kiwicopple",
        "supabot",
        "supabot",
        "supabot",
    ]


async def test_embed_spread_to_one_and_to_many(anon: AsyncClient) -> None:
    res = await (
        anon.table("messages").select("id, ...users(username, status)").eq("id", 4).execute()
    )
    assert res.data == [{"id": 4, "username": "kiwicopple", "status": "OFFLINE"}]
    many = await anon.table("channels").select("slug, ...messages(id)").eq("id", 2).execute()
    assert many.data == [{"slug": "random", "id": [2]}]


async def test_embed_count_in_embed_and_nested(anon: AsyncClient) -> None:
    res = await anon.table("channels").select("slug, messages(count)").order("id").execute()
    assert [r["messages"] for r in res.data] == [[{"count": 3}], [{"count": 1}], [{"count": 0}]]
    nested = await (
        anon.table("users")
        .select("username, messages(channels(count))")
        .eq("username", "kiwicopple")
        .execute()
    )
    assert nested.data == [{"username": "kiwicopple", "messages": [{"channels": {"count": 1}}]}]


async def test_embed_with_count_exact_counts_parents(anon: AsyncClient) -> None:
    res = await (
        anon.table("channels").select("slug, messages!inner(id)", count="exact").limit(1).execute()
    )
    assert res.count == 2
    assert len(res.data) == 1


async def test_embed_in_write_representation(anon: AsyncClient) -> None:
    res = await (
        anon.table("messages")
        .insert({"message": "new", "username": "loner", "channel_id": 3})
        .select("message, users(status), channels(slug)")
        .execute()
    )
    assert res.data == [
        {"message": "new", "users": {"status": "OFFLINE"}, "channels": {"slug": "empty"}}
    ]
    await anon.table("messages").delete().eq("message", "new").execute()


# --- errors ------------------------------------------------------------------------------------
async def test_embed_unknown_is_pgrst200_with_suggestion(anon: AsyncClient) -> None:
    err = await _error(anon.table("messages").select("id, user(username)"))
    assert err == {
        "code": "PGRST200",
        "message": (
            "Could not find a relationship between 'messages' and 'user' in the schema cache"
        ),
        "details": "Searched for a foreign key relationship between 'messages' and 'user' in the "
        "schema 'public', but no matches were found.",
        "hint": "Perhaps you meant 'users' instead of 'user'.",
    }
    hinted = await _error(anon.table("messages").select("users!nope(username)"))
    assert hinted["details"] == (
        "Searched for a foreign key relationship between 'messages' and 'users' using the hint "
        "'nope' in the schema 'public', but no matches were found."
    )
    assert hinted["hint"] is None


async def test_embed_filter_on_non_embedded_is_pgrst108(anon: AsyncClient) -> None:
    err = await _error(anon.table("messages").select("id").eq("users.status", "x"))
    assert err["code"] == "PGRST108"
    assert err["message"] == "'users' is not an embedded resource in this request"
    assert err["hint"] == "Verify that 'users' is included in the 'select' query parameter."
    order = await _error(anon.table("channels").select("id").order("id", foreign_table="messages"))
    assert order["code"] == "PGRST108"


async def test_embed_related_order_on_to_many_is_pgrst118(anon: AsyncClient) -> None:
    err = await _error(anon.table("channels").select("id, messages(id)").order("messages(id)"))
    assert err["code"] == "PGRST118"


# --- RLS inside embeds -------------------------------------------------------------------------
async def test_embed_rls_hides_other_users_rows_inside_embeds(
    local_stack: LocalStack,
    embed_db: ServedDatabase,
    http: tuple[httpx.AsyncClient, StatusLog],
) -> None:
    alice = make_user(local_stack, embed_db.superuser_dsn)
    bob = make_user(local_stack, embed_db.superuser_dsn)
    with psycopg.connect(embed_db.superuser_dsn, autocommit=True) as conn:
        conn.execute(
            "insert into public.notes (username, owner, body) values"
            " ('awailas', %s, 'alice secret'), ('awailas', %s, 'bob secret')",
            [alice.id, bob.id],
        )
    as_alice = await async_client(embed_db.url, local_stack, http[0], token=alice.token)
    as_bob = await async_client(embed_db.url, local_stack, http[0], token=bob.token)
    anon = await async_client(embed_db.url, local_stack, http[0])
    query = "username, notes(body)"
    a = await as_alice.table("users").select(query).eq("username", "awailas").execute()
    b = await as_bob.table("users").select(query).eq("username", "awailas").execute()
    assert a.data == [{"username": "awailas", "notes": [{"body": "alice secret"}]}]
    assert b.data == [{"username": "awailas", "notes": [{"body": "bob secret"}]}]
    # anon has the grant but no policy: the parent row shows, the embed is empty.
    n = await anon.table("users").select(query).eq("username", "awailas").execute()
    assert n.data == [{"username": "awailas", "notes": []}]
    # and an inner join on a hidden embed hides the parent too
    inner = await (
        as_alice.table("users")
        .select("username, notes!inner(body)")
        .eq("notes.body", "bob secret")
        .execute()
    )
    assert inner.data == []
    # to-one from the protected side: bob sees only his note, with its user
    back = await as_bob.table("notes").select("body, users(username)").execute()
    assert back.data == [{"body": "bob secret", "users": {"username": "awailas"}}]


# --- the project's own schema ------------------------------------------------------------------
async def test_embed_conversations_with_latest_message_in_one_request(
    stack_server: ServerThread,
    local_stack: LocalStack,
    http: tuple[httpx.AsyncClient, StatusLog],
) -> None:
    user: User = make_user(local_stack)
    other: User = make_user(local_stack)
    client = await async_client(stack_server.url, local_stack, http[0], token=user.token)
    stranger = await async_client(stack_server.url, local_stack, http[0], token=other.token)
    conv = (await client.table("conversations").insert({"title": "embed"}).execute()).data[0]
    # Users read messages; only the service writes them (docs/design.md §13).
    service = await async_client(
        stack_server.url, local_stack, http[0], key=local_stack.keys.service_role_key
    )
    for content in ("first", "second", "third"):
        await (
            service.table("messages")
            .insert(
                {
                    "conversation_id": conv["id"],
                    "user_id": user.id,
                    "role": "user",
                    "content": content,
                }
            )
            .execute()
        )
    before = len(http[1].statuses)
    res = await (
        client.table("conversations")
        .select("id, title, messages(content, created_at)")
        .eq("id", conv["id"])
        .order("created_at", desc=True, foreign_table="messages")
        .order("id", desc=True, foreign_table="messages")
        .limit(1, foreign_table="messages")
        .execute()
    )
    assert len(http[1].statuses) == before + 1  # one request
    assert res.data[0]["title"] == "embed"
    assert [m["content"] for m in res.data[0]["messages"]] == ["third"]
    with_user = await (
        client.table("messages")
        .select("content, users(id)")
        .eq("conversation_id", conv["id"])
        .execute()
    )
    assert {m["users"]["id"] for m in with_user.data} == {user.id}
    hidden = await (
        stranger.table("conversations")
        .select("id, messages(content)")
        .eq("id", conv["id"])
        .execute()
    )
    assert hidden.data == []


async def test_embed_computed_fields_at_top_level_and_inside_embeds(anon: AsyncClient) -> None:
    top = await anon.table("messages").select("id, blurb").eq("blurb", "hi").execute()
    assert top.data == [{"id": 4, "blurb": "hi"}]
    star = await anon.table("messages").select("*").eq("id", 1).execute()
    assert "blurb" not in star.data[0]
    inside = await (
        anon.table("users")
        .select("username, messages(id, blurb)")
        .eq("username", "supabot")
        .order("blurb", foreign_table="messages")
        .execute()
    )
    assert inside.data[0]["messages"] == [
        {"id": 1, "blurb": "Hel"},
        {"id": 2, "blurb": "Per"},
        {"id": 3, "blurb": "Sup"},
    ]


async def test_embed_computed_relationships_by_function_name(anon: AsyncClient) -> None:
    res = await (
        anon.table("users")
        .select("username, latest_message(message), channels_posted_in(slug)")
        .in_("username", ["supabot", "loner"])
        .order("username", desc=True)
        .order("id", foreign_table="channels_posted_in")
        .execute()
    )
    assert res.data == [
        {
            "username": "supabot",
            "latest_message": {"message": "Supabase Launch Week is on fire"},
            "channels_posted_in": [{"slug": "public"}, {"slug": "random"}],
        },
        # A non-set function yields one row, all NULL, when it finds nothing (as in FROM).
        {"username": "loner", "latest_message": {"message": None}, "channels_posted_in": []},
    ]


async def test_embed_repeated_keys_inside_an_embed_are_one_key(anon: AsyncClient) -> None:
    """Found by the property test: a repeated key in a spread was an ambiguous column."""
    res = await anon.table("collections").select("id, ...collections(id,id)").eq("id", 1).execute()
    assert res.data == [{"id": [2, 3]}]
    star = await anon.table("messages").select("id, ...users(*, username)").eq("id", 4).execute()
    assert star.data[0]["username"] == "kiwicopple"
    ordered = await (
        anon.table("messages")
        .select("id, users(username, username)")
        .order("users(username)")
        .limit(1)
        .execute()
    )
    assert ordered.data == [{"id": 4, "users": {"username": "kiwicopple"}}]
