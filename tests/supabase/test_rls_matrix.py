"""Row-level security, cell by cell: users A and B and anon × every table × every operation.

Each check runs as PostgREST runs a request: logged in as `authenticator`,
one transaction, `set_config('role', …, true)` and `request.jwt.claims` as JSON with `sub` and
`role`. RLS is PostgreSQL's own; nothing here re-implements it. The truth after each request is
read back as the superuser. Every test makes its own users, so tests are independent on the
shared session database.

Expected, for a signed-in user (anon gets 42501 "permission denied" in every cell):

    table          select     insert                          update                   delete
    users          own row    42501 (no grant)                display_name of own;     42501
                                                              others' 0 rows
    conversations  own rows   own; in another's name: RLS     title of own; others'    own; others'
                                                              0 rows; owner: 42501     0 rows
    messages       own rows   42501 (no grant: the service    42501 (no grant)         own; others'
                              writes them, attested)                                   0 rows
    usage_logs     own rows   42501 (no grant: attested       42501 (no grant)         42501
                              writes by the service only)
"""

from __future__ import annotations

import uuid
from decimal import Decimal

import psycopg
import pytest

from app.local.stack import LocalStack
from tests.supabase.rls import (
    OPS,
    TABLES,
    USAGE_INSERT,
    Actor,
    World,
    acting_as,
    anon_denied,
    denied,
    ids,
    no_grant,
    rls_violation,
    touches_only_own_row,
    usage_counts,
    usage_row,
)


# --- the matrix: one check per (table, operation) for a signed-in user --------------------------
def _users_select(w: World, actor: Actor) -> None:
    with acting_as(w, actor) as conn:
        assert ids(conn, "users") == {w.me(actor).user_id}


def _users_insert(w: World, actor: Actor) -> None:
    # Profiles are made by the auth.users trigger only. Were INSERT granted, these would fail
    # differently (23505 duplicate, 23503 no such auth user), so the 42501 is the grant's doing.
    with acting_as(w, actor) as conn:
        query = "insert into public.users (id, email) values (%s, 'x@rls.test')"
        denied(conn, query, (w.me(actor).user_id,), no_grant("users"))
        denied(conn, query, (uuid.uuid4(),), no_grant("users"))


def _users_update(w: World, actor: Actor) -> None:
    me, other = w.me(actor), w.other(actor)
    query = "update public.users set display_name = %s where id = %s"
    with acting_as(w, actor) as conn:
        touches_only_own_row(conn, "update public.users set display_name = 'everyone'")
        assert conn.execute(query, ("mine", me.user_id)).rowcount == 1
        assert conn.execute(query, ("hijacked", other.user_id)).rowcount == 0
    names = dict(
        w.truth(
            "select id, display_name from public.users where id = any(%s)",
            ([me.user_id, other.user_id],),
        )
    )
    assert names == {me.user_id: "mine", other.user_id: None}


def _users_delete(w: World, actor: Actor) -> None:
    me, other = w.me(actor), w.other(actor)
    with acting_as(w, actor) as conn:
        for target in (me.user_id, other.user_id):
            denied(conn, "delete from public.users where id = %s", (target,), no_grant("users"))
    assert (
        len(
            w.truth("select 1 from public.users where id = any(%s)", ([me.user_id, other.user_id],))
        )
        == 2
    )


def _conversations_select(w: World, actor: Actor) -> None:
    with acting_as(w, actor) as conn:
        assert ids(conn, "conversations") == {w.me(actor).conversation_id}


def _conversations_insert(w: World, actor: Actor) -> None:
    me, other = w.me(actor), w.other(actor)
    with acting_as(w, actor) as conn:
        row = conn.execute(
            "insert into public.conversations (title) values ('new') returning user_id"
        ).fetchone()
        assert row == (me.user_id,)  # user_id defaults to auth.uid()
        denied(
            conn,
            "insert into public.conversations (user_id, title) values (%s, 'planted')",
            (other.user_id,),
            rls_violation("conversations"),
        )
    counts = dict(
        w.truth(
            "select user_id, count(*) from public.conversations"
            " where user_id = any(%s) group by user_id",
            ([me.user_id, other.user_id],),
        )
    )
    assert counts == {me.user_id: 2, other.user_id: 1}


def _conversations_update(w: World, actor: Actor) -> None:
    me, other = w.me(actor), w.other(actor)
    query = "update public.conversations set title = %s where id = %s"
    with acting_as(w, actor) as conn:
        touches_only_own_row(conn, "update public.conversations set title = 'everyone'")
        assert conn.execute(query, ("renamed", me.conversation_id)).rowcount == 1
        assert conn.execute(query, ("hijacked", other.conversation_id)).rowcount == 0
        denied(
            conn,
            "update public.conversations set user_id = %s where id = %s",
            (other.user_id, me.conversation_id),
            no_grant("conversations"),
        )
    rows = dict(
        w.truth(
            "select id, title from public.conversations where id = any(%s)",
            ([me.conversation_id, other.conversation_id],),
        )
    )
    assert rows == {me.conversation_id: "renamed", other.conversation_id: "seed"}


def _conversations_delete(w: World, actor: Actor) -> None:
    me, other = w.me(actor), w.other(actor)
    query = "delete from public.conversations where id = %s"
    with acting_as(w, actor) as conn:
        touches_only_own_row(conn, "delete from public.conversations")
        assert conn.execute(query, (other.conversation_id,)).rowcount == 0
        assert conn.execute(query, (me.conversation_id,)).rowcount == 1
    left = w.truth(
        "select id from public.conversations where id = any(%s)",
        ([me.conversation_id, other.conversation_id],),
    )
    assert left == [(other.conversation_id,)]


def _messages_select(w: World, actor: Actor) -> None:
    with acting_as(w, actor) as conn:
        assert ids(conn, "messages") == {w.me(actor).message_id}


def _messages_insert(w: World, actor: Actor) -> None:
    # Users read messages; only the service writes them (attested chat_begin/chat_finish), so no
    # role, token count, status or turn id of a message is ever the user's to choose.
    me, other = w.me(actor), w.other(actor)
    query = (
        "insert into public.messages (conversation_id, role, content) values (%s, %s, 'hi')"
        " returning user_id"
    )
    with acting_as(w, actor) as conn:
        for role in ("user", "assistant", "system"):
            denied(conn, query, (me.conversation_id, role), no_grant("messages"))
            denied(conn, query, (other.conversation_id, role), no_grant("messages"))
    counts = dict(
        w.truth(
            "select conversation_id, count(*) from public.messages"
            " where conversation_id = any(%s) group by conversation_id",
            ([me.conversation_id, other.conversation_id],),
        )
    )
    assert counts == {me.conversation_id: 1, other.conversation_id: 1}


def _messages_update(w: World, actor: Actor) -> None:
    me, other = w.me(actor), w.other(actor)
    with acting_as(w, actor) as conn:
        for target in (me.message_id, other.message_id):
            denied(
                conn,
                "update public.messages set content = 'edited' where id = %s",
                (target,),
                no_grant("messages"),
            )
    contents = w.truth(
        "select content from public.messages where id = any(%s)",
        ([me.message_id, other.message_id],),
    )
    assert contents == [("hello",), ("hello",)]


def _messages_delete(w: World, actor: Actor) -> None:
    me, other = w.me(actor), w.other(actor)
    query = "delete from public.messages where id = %s"
    with acting_as(w, actor) as conn:
        touches_only_own_row(conn, "delete from public.messages")
        assert conn.execute(query, (other.message_id,)).rowcount == 0
        assert conn.execute(query, (me.message_id,)).rowcount == 1
    left = w.truth(
        "select id from public.messages where id = any(%s)", ([me.message_id, other.message_id],)
    )
    assert left == [(other.message_id,)]


def _usage_logs_select(w: World, actor: Actor) -> None:
    with acting_as(w, actor) as conn:
        assert ids(conn, "usage_logs") == {w.me(actor).usage_id}


def _usage_logs_insert(w: World, actor: Actor) -> None:
    me, other = w.me(actor), w.other(actor)
    with acting_as(w, actor) as conn:
        denied(conn, USAGE_INSERT, usage_row(me), no_grant("usage_logs"))
        denied(conn, USAGE_INSERT, usage_row(me, cost=0, tin=0), no_grant("usage_logs"))
        denied(conn, USAGE_INSERT, usage_row(other), no_grant("usage_logs"))
    assert usage_counts(w) == {me.user_id: 1, other.user_id: 1}


def _usage_logs_update(w: World, actor: Actor) -> None:
    me, other = w.me(actor), w.other(actor)
    with acting_as(w, actor) as conn:
        for target in (me.usage_id, other.usage_id):
            denied(
                conn,
                "update public.usage_logs set cost_usd = 0 where id = %s",
                (target,),
                no_grant("usage_logs"),
            )
    costs = w.truth(
        "select cost_usd from public.usage_logs where id = any(%s)",
        ([me.usage_id, other.usage_id],),
    )
    assert costs == [(Decimal("0.01230000"),)] * 2


def _usage_logs_delete(w: World, actor: Actor) -> None:
    me, other = w.me(actor), w.other(actor)
    with acting_as(w, actor) as conn:
        for target in (me.usage_id, other.usage_id):
            denied(
                conn,
                "delete from public.usage_logs where id = %s",
                (target,),
                no_grant("usage_logs"),
            )
    assert usage_counts(w) == {me.user_id: 1, other.user_id: 1}


USER_CHECKS = {(table, op): globals()[f"_{table}_{op}"] for table in TABLES for op in OPS}


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("table", TABLES)
@pytest.mark.parametrize("actor", ["A", "B", "anon"])
def test_rls_matrix_cell_allows_own_rows_and_denies_the_rest(
    world: World, actor: Actor, table: str, op: str
) -> None:
    if actor == "anon":
        anon_denied(world, table, op)
    else:
        USER_CHECKS[(table, op)](world, actor)


def test_every_public_table_has_rls_enabled_and_a_policy(local_stack: LocalStack) -> None:
    with psycopg.connect(local_stack.pg.superuser_dsn) as conn:
        rows = conn.execute(
            "select c.relname, c.relrowsecurity,"
            " (select count(*) from pg_policies p"
            "   where p.schemaname = 'public' and p.tablename = c.relname)"
            " from pg_class c where c.relnamespace = 'public'::regnamespace"
            " and c.relkind in ('r', 'p') order by c.relname"
        ).fetchall()
    assert {r[0] for r in rows} >= set(TABLES)
    unprotected = [(name, rls, policies) for name, rls, policies in rows if not rls or not policies]
    assert unprotected == []
