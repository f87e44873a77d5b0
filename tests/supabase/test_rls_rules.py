"""The rules docs/design.md §7 names, each as its own test, run as PostgREST runs a request.

Spend cannot be lowered: usage rows are append-only and never negative, and deleting history
unlinks usage instead of deleting it. Nobody writes into another user's rows or name.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.supabase.rls import (
    ANON_STATEMENTS,
    TABLES,
    USAGE_INSERT,
    World,
    acting_as,
    anon_denied,
    denied,
    ids,
    no_grant,
    usage_counts,
    usage_row,
)


def test_user_cannot_add_message_to_another_users_conversation(world: World) -> None:
    b = world.b
    with acting_as(world, "A") as conn:
        for author in (world.a.user_id, b.user_id):  # as themself, or impersonating B
            denied(
                conn,
                "insert into public.messages (conversation_id, user_id, role, content)"
                " values (%s, %s, 'assistant', 'planted')",
                (b.conversation_id, author),
                no_grant("messages"),
            )
    assert world.truth(
        "select id from public.messages where conversation_id = %s", (b.conversation_id,)
    ) == [(b.message_id,)]


def test_user_cannot_see_another_users_messages_or_usage(world: World) -> None:
    b = world.b
    with acting_as(world, "A") as conn:
        assert (
            conn.execute(
                "select * from public.messages where id = %s or conversation_id = %s",
                (b.message_id, b.conversation_id),
            ).fetchall()
            == []
        )
        assert (
            conn.execute(
                "select * from public.usage_logs where id = %s or user_id = %s",
                (b.usage_id, b.user_id),
            ).fetchall()
            == []
        )
        assert conn.execute(
            "select count(*), coalesce(sum(cost_usd), 0) from public.usage_logs"
        ).fetchone() == (1, Decimal("0.01230000"))


@pytest.mark.parametrize(
    "statement",
    [
        "update public.usage_logs set cost_usd = 0 where id = %s",
        "update public.usage_logs set tokens_out = 0 where id = %s",
        "delete from public.usage_logs where id = %s",
    ],
)
def test_user_cannot_update_or_delete_usage_rows_even_their_own(
    world: World, statement: str
) -> None:
    with acting_as(world, "A") as conn:
        denied(conn, statement, (world.a.usage_id,), no_grant("usage_logs"))
    assert world.truth(
        "select tokens_out, cost_usd from public.usage_logs where id = %s", (world.a.usage_id,)
    ) == [(20, Decimal("0.01230000"))]


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("cost_usd", Decimal("-0.01")),
        ("tokens_in", -1),
        ("tokens_out", -1),
        ("cache_read_tokens", -1),
        ("cache_write_tokens", -1),
    ],
)
def test_user_cannot_record_negative_cost_or_tokens(world: World, column: str, value: Any) -> None:
    a = world.a
    query = sql.SQL(
        "insert into public.usage_logs (user_id, conversation_id, message_id, model, {})"
        " values (%s, %s, %s, 'gpt-4o', %s)"
    ).format(sql.Identifier(column))
    params = (a.user_id, a.conversation_id, a.message_id, value)
    with acting_as(world, "A") as conn:
        denied(conn, query, params, no_grant("usage_logs"))  # users record no usage at all
    # ...and even the service's own writes cannot hold a negative amount.
    with (
        psycopg.connect(world.stack.pg.superuser_dsn) as conn,
        pytest.raises(psycopg.errors.CheckViolation, match=f"usage_logs_{column}_check"),
    ):
        conn.execute(query, params)
    assert usage_counts(world) == {a.user_id: 1, world.b.user_id: 1}


def test_user_cannot_record_usage_in_another_users_name(world: World) -> None:
    b = world.b
    with acting_as(world, "A") as conn:
        # B's id with A's own conversation, and B's id with no conversation at all.
        denied(conn, USAGE_INSERT, usage_row(world.a, user=b.user_id), no_grant("usage_logs"))
        denied(conn, USAGE_INSERT, usage_row(b, conv=None, msg=None), no_grant("usage_logs"))
    assert usage_counts(world) == {world.a.user_id: 1, b.user_id: 1}


@pytest.mark.parametrize("pointing_at", ["conversation", "message", "both"])
def test_user_cannot_record_usage_pointing_at_another_users_rows(
    world: World, pointing_at: str
) -> None:
    a, b = world.a, world.b
    row = usage_row(a)
    if pointing_at in ("conversation", "both"):
        row["conv"] = b.conversation_id
    if pointing_at in ("message", "both"):
        row["msg"] = b.message_id
    with acting_as(world, "A") as conn:
        denied(conn, USAGE_INSERT, row, no_grant("usage_logs"))
    assert usage_counts(world) == {a.user_id: 1, b.user_id: 1}


def test_user_cannot_change_profile_id_or_another_users_profile(world: World) -> None:
    a, b = world.a, world.b
    with acting_as(world, "A") as conn:
        denied(
            conn,
            "update public.users set id = %s where id = %s",
            (b.user_id, a.user_id),
            no_grant("users"),
        )
        denied(
            conn,
            "update public.users set email = 'evil@rls.test' where id = %s",
            (a.user_id,),
            no_grant("users"),
        )
        assert (
            conn.execute(
                "update public.users set display_name = 'pwned' where id = %s", (b.user_id,)
            ).rowcount
            == 0
        )
    rows = dict(
        world.truth(
            "select id, display_name from public.users where id = any(%s)",
            ([a.user_id, b.user_id],),
        )
    )
    assert rows == {a.user_id: None, b.user_id: None}


def test_anon_can_do_nothing_on_any_table(world: World) -> None:
    for table, op in ANON_STATEMENTS:
        anon_denied(world, table, op)
    with acting_as(world, "anon") as conn:
        assert conn.execute("select auth.uid(), auth.role()").fetchone() == (None, "anon")


def test_service_role_sees_all_rows(world: World) -> None:
    mine = {world.a.user_id, world.b.user_id}
    with acting_as(world, "service_role") as conn:
        assert mine <= ids(conn, "users")
        assert {world.a.conversation_id, world.b.conversation_id} <= ids(conn, "conversations")
        assert {world.a.message_id, world.b.message_id} <= ids(conn, "messages")
        assert {world.a.usage_id, world.b.usage_id} <= ids(conn, "usage_logs")
        seen = [
            conn.execute(
                sql.SQL("select count(*) from {}").format(sql.Identifier("public", t))
            ).fetchone()
            for t in TABLES
        ]
    all_rows = [
        world.truth(sql.SQL("select count(*) from {}").format(sql.Identifier("public", t)))[0]
        for t in TABLES
    ]
    assert seen == all_rows


def test_deleting_own_conversation_keeps_usage_rows_with_conversation_nulled(
    world: World,
) -> None:
    a = world.a
    with acting_as(world, "A") as conn:
        assert (
            conn.execute(
                "delete from public.conversations where id = %s", (a.conversation_id,)
            ).rowcount
            == 1
        )
    # Spend cannot be lowered by deleting history: the usage row stays, unlinked.
    assert world.truth(
        "select user_id, conversation_id, message_id, cost_usd from public.usage_logs"
        " where id = %s",
        (a.usage_id,),
    ) == [(a.user_id, None, None, Decimal("0.01230000"))]
    assert world.truth("select count(*) from public.messages where id = %s", (a.message_id,)) == [
        (0,)
    ]
    with acting_as(world, "A") as conn:
        assert conn.execute(
            "select coalesce(sum(cost_usd), 0) from public.usage_logs"
        ).fetchone() == (Decimal("0.01230000"),)
