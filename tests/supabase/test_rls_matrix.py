"""Row-level security, cell by cell: users A and B and anon × every table × every operation.

Each check runs as PostgREST runs a request (wire reference §2.8): logged in as `authenticator`,
one transaction, `set_config('role', …, true)` and `request.jwt.claims` as JSON with `sub` and
`role`. RLS is PostgreSQL's own; nothing here re-implements it. The truth after each request is
read back as the superuser. Every test makes its own users, so tests are independent on the
shared session database.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

import psycopg
import pytest
from psycopg import sql

from app.local.stack import LocalStack

TABLES = ("users", "conversations", "messages", "usage_logs")
OPS = ("select", "insert", "update", "delete")
Actor = Literal["A", "B", "anon"]


@dataclass(frozen=True)
class Seeded:
    """One user's rows, written by the owner role (BYPASSRLS) as the service would."""

    user_id: uuid.UUID
    conversation_id: uuid.UUID
    message_id: uuid.UUID
    usage_id: int


@dataclass(frozen=True)
class World:
    stack: LocalStack
    a: Seeded
    b: Seeded

    def me(self, actor: Actor) -> Seeded:
        return self.a if actor == "A" else self.b

    def other(self, actor: Actor) -> Seeded:
        return self.b if actor == "A" else self.a

    def truth(self, query: str, params: Any = ()) -> list[tuple[Any, ...]]:
        """Rows as the superuser sees them (no RLS), after the actor's transaction committed."""
        with psycopg.connect(self.stack.pg.superuser_dsn) as conn:
            return conn.execute(query, params).fetchall()  # type: ignore[arg-type]


def _create_user(stack: LocalStack) -> uuid.UUID:
    user_id = uuid.uuid4()
    with psycopg.connect(stack.pg.superuser_dsn) as conn:
        conn.execute(
            "insert into auth.users (id, aud, role, email, raw_user_meta_data, created_at,"
            " updated_at) values (%s, 'authenticated', 'authenticated', %s, '{}', now(), now())",
            (user_id, f"{user_id}@rls.test"),
        )
    return user_id


def _seed(stack: LocalStack, user_id: uuid.UUID) -> Seeded:
    with psycopg.connect(stack.ctx.db_url) as conn:  # `postgres`: owner, BYPASSRLS
        conv = conn.execute(
            "insert into public.conversations (user_id, title) values (%s, 'seed') returning id",
            (user_id,),
        ).fetchone()
        msg = conn.execute(
            "insert into public.messages (conversation_id, user_id, role, content)"
            " values (%s, %s, 'user', 'hello') returning id",
            (conv[0], user_id),  # type: ignore[index]
        ).fetchone()
        usage = conn.execute(
            "insert into public.usage_logs (user_id, conversation_id, message_id, provider, model,"
            " tokens_in, tokens_out, cost_usd) values (%s, %s, %s, 'anthropic',"
            " 'claude-sonnet-4-5', 10, 20, 0.0123) returning id",
            (user_id, conv[0], msg[0]),  # type: ignore[index]
        ).fetchone()
    return Seeded(user_id, conv[0], msg[0], usage[0])  # type: ignore[index]


@pytest.fixture
def world(local_stack: LocalStack) -> Iterator[World]:
    a, b = _create_user(local_stack), _create_user(local_stack)
    yield World(local_stack, _seed(local_stack, a), _seed(local_stack, b))
    _delete_auth_users(local_stack, a, b)


def _delete_auth_users(stack: LocalStack, *ids: uuid.UUID) -> None:
    with psycopg.connect(stack.pg.superuser_dsn) as conn:
        conn.execute("delete from auth.users where id = any(%s)", (list(ids),))


def _claims(world: World, actor: Actor | Literal["service_role"]) -> tuple[str, dict[str, str]]:
    if actor == "anon":
        return "anon", {"role": "anon"}
    if actor == "service_role":
        return "service_role", {"role": "service_role"}
    sub = str(world.me(actor).user_id)
    return "authenticated", {"sub": sub, "role": "authenticated", "aud": "authenticated"}


@contextmanager
def acting_as(
    world: World, actor: Actor | Literal["service_role"]
) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
    """One PostgREST-style request transaction; commits on success like PostgREST does."""
    role, claims = _claims(world, actor)
    with psycopg.connect(world.stack.ctx.dsn("authenticator")) as conn:
        conn.execute(
            "select set_config('search_path', 'public, extensions', true),"
            " set_config('role', %s, true), set_config('request.jwt.claims', %s, true)",
            (role, json.dumps(claims)),
        )
        yield conn


def _ids(conn: psycopg.Connection[tuple[Any, ...]], table: str, column: str = "id") -> set[Any]:
    query = sql.SQL("select {} from {}").format(
        sql.Identifier(column), sql.Identifier("public", table)
    )
    return {r[0] for r in conn.execute(query)}


def _denied(conn: psycopg.Connection[tuple[Any, ...]], query: str, params: Any, match: str) -> None:
    """The statement fails with 42501; a savepoint keeps the request transaction usable."""
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match=match), conn.transaction():
        conn.execute(query, params)  # type: ignore[arg-type]


def _no_grant(table: str) -> str:
    return f"permission denied for table {table}"


def _rls(table: str) -> str:
    return f'new row violates row-level security policy for table "{table}"'


def _touches_only_own_row(conn: psycopg.Connection[tuple[Any, ...]], statement: str) -> None:
    """An unfiltered UPDATE/DELETE reads no column, so only its own policy applies (a WHERE clause
    would bring in the SELECT policy too and hide a missing one). Always rolled back."""
    with conn.transaction(force_rollback=True):
        assert conn.execute(statement).rowcount == 1


# --- the matrix: one check per (table, operation) for a signed-in user --------------------------
def _users_select(w: World, actor: Actor) -> None:
    with acting_as(w, actor) as conn:
        assert _ids(conn, "users") == {w.me(actor).user_id}


def _users_insert(w: World, actor: Actor) -> None:
    # Profiles are made by the auth.users trigger only. Were INSERT granted, these would fail
    # differently (23505 duplicate, 23503 no such auth user), so the 42501 is the grant's doing.
    with acting_as(w, actor) as conn:
        query = "insert into public.users (id, email) values (%s, 'x@rls.test')"
        _denied(conn, query, (w.me(actor).user_id,), _no_grant("users"))
        _denied(conn, query, (uuid.uuid4(),), _no_grant("users"))


def _users_update(w: World, actor: Actor) -> None:
    me, other = w.me(actor), w.other(actor)
    query = "update public.users set display_name = %s where id = %s"
    with acting_as(w, actor) as conn:
        _touches_only_own_row(conn, "update public.users set display_name = 'everyone'")
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
            _denied(conn, "delete from public.users where id = %s", (target,), _no_grant("users"))
    assert (
        len(
            w.truth("select 1 from public.users where id = any(%s)", ([me.user_id, other.user_id],))
        )
        == 2
    )


def _conversations_select(w: World, actor: Actor) -> None:
    with acting_as(w, actor) as conn:
        assert _ids(conn, "conversations") == {w.me(actor).conversation_id}


def _conversations_insert(w: World, actor: Actor) -> None:
    me, other = w.me(actor), w.other(actor)
    with acting_as(w, actor) as conn:
        row = conn.execute(
            "insert into public.conversations (title) values ('new') returning user_id"
        ).fetchone()
        assert row == (me.user_id,)  # user_id defaults to auth.uid()
        _denied(
            conn,
            "insert into public.conversations (user_id, title) values (%s, 'planted')",
            (other.user_id,),
            _rls("conversations"),
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
        _touches_only_own_row(conn, "update public.conversations set title = 'everyone'")
        assert conn.execute(query, ("renamed", me.conversation_id)).rowcount == 1
        assert conn.execute(query, ("hijacked", other.conversation_id)).rowcount == 0
        _denied(
            conn,
            "update public.conversations set user_id = %s where id = %s",
            (other.user_id, me.conversation_id),
            _no_grant("conversations"),
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
        _touches_only_own_row(conn, "delete from public.conversations")
        assert conn.execute(query, (other.conversation_id,)).rowcount == 0
        assert conn.execute(query, (me.conversation_id,)).rowcount == 1
    left = w.truth(
        "select id from public.conversations where id = any(%s)",
        ([me.conversation_id, other.conversation_id],),
    )
    assert left == [(other.conversation_id,)]


def _messages_select(w: World, actor: Actor) -> None:
    with acting_as(w, actor) as conn:
        assert _ids(conn, "messages") == {w.me(actor).message_id}


def _messages_insert(w: World, actor: Actor) -> None:
    me, other = w.me(actor), w.other(actor)
    query = (
        "insert into public.messages (conversation_id, role, content) values (%s, 'user', 'hi')"
        " returning user_id"
    )
    with acting_as(w, actor) as conn:
        assert conn.execute(query, (me.conversation_id,)).fetchone() == (me.user_id,)
        _denied(conn, query, (other.conversation_id,), _rls("messages"))
    counts = dict(
        w.truth(
            "select conversation_id, count(*) from public.messages"
            " where conversation_id = any(%s) group by conversation_id",
            ([me.conversation_id, other.conversation_id],),
        )
    )
    assert counts == {me.conversation_id: 2, other.conversation_id: 1}


def _messages_update(w: World, actor: Actor) -> None:
    me, other = w.me(actor), w.other(actor)
    with acting_as(w, actor) as conn:
        for target in (me.message_id, other.message_id):
            _denied(
                conn,
                "update public.messages set content = 'edited' where id = %s",
                (target,),
                _no_grant("messages"),
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
        _touches_only_own_row(conn, "delete from public.messages")
        assert conn.execute(query, (other.message_id,)).rowcount == 0
        assert conn.execute(query, (me.message_id,)).rowcount == 1
    left = w.truth(
        "select id from public.messages where id = any(%s)", ([me.message_id, other.message_id],)
    )
    assert left == [(other.message_id,)]


def _usage_logs_select(w: World, actor: Actor) -> None:
    with acting_as(w, actor) as conn:
        assert _ids(conn, "usage_logs") == {w.me(actor).usage_id}


_USAGE_INSERT = (
    "insert into public.usage_logs (user_id, conversation_id, message_id, model, tokens_in,"
    " tokens_out, cost_usd) values (%(user)s, %(conv)s, %(msg)s, 'gpt-4o', %(tin)s, %(tout)s,"
    " %(cost)s) returning user_id"
)


def _usage(seeded: Seeded, **overrides: Any) -> dict[str, Any]:
    row = {
        "user": seeded.user_id,
        "conv": seeded.conversation_id,
        "msg": seeded.message_id,
        "tin": 5,
        "tout": 7,
        "cost": Decimal("0.001"),
    }
    return row | overrides


def _usage_logs_insert(w: World, actor: Actor) -> None:
    me, other = w.me(actor), w.other(actor)
    with acting_as(w, actor) as conn:
        assert conn.execute(_USAGE_INSERT, _usage(me)).fetchone() == (me.user_id,)
        _denied(conn, _USAGE_INSERT, _usage(other), _rls("usage_logs"))
    assert _usage_counts(w) == {me.user_id: 2, other.user_id: 1}


def _usage_counts(w: World) -> dict[uuid.UUID, int]:
    return dict(
        w.truth(
            "select user_id, count(*) from public.usage_logs where user_id = any(%s)"
            " group by user_id",
            ([w.a.user_id, w.b.user_id],),
        )
    )


def _usage_logs_update(w: World, actor: Actor) -> None:
    me, other = w.me(actor), w.other(actor)
    with acting_as(w, actor) as conn:
        for target in (me.usage_id, other.usage_id):
            _denied(
                conn,
                "update public.usage_logs set cost_usd = 0 where id = %s",
                (target,),
                _no_grant("usage_logs"),
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
            _denied(
                conn,
                "delete from public.usage_logs where id = %s",
                (target,),
                _no_grant("usage_logs"),
            )
    assert _usage_counts(w) == {me.user_id: 1, other.user_id: 1}


USER_CHECKS = {(table, op): globals()[f"_{table}_{op}"] for table in TABLES for op in OPS}


# --- anon: no grant on any table, so every statement is refused before RLS is consulted ---------
ANON_STATEMENTS = {
    ("users", "select"): "select * from public.users",
    ("users", "insert"): "insert into public.users (id) values (%(user)s)",
    ("users", "update"): "update public.users set display_name = 'anon' where id = %(user)s",
    ("users", "delete"): "delete from public.users where id = %(user)s",
    ("conversations", "select"): "select * from public.conversations",
    (
        "conversations",
        "insert",
    ): "insert into public.conversations (user_id, title) values (%(user)s, 'anon')",
    (
        "conversations",
        "update",
    ): "update public.conversations set title = 'anon' where id = %(conv)s",
    ("conversations", "delete"): "delete from public.conversations where id = %(conv)s",
    ("messages", "select"): "select * from public.messages",
    ("messages", "insert"): "insert into public.messages (conversation_id, user_id, role, content)"
    " values (%(conv)s, %(user)s, 'user', 'anon')",
    ("messages", "update"): "update public.messages set content = 'anon' where id = %(msg)s",
    ("messages", "delete"): "delete from public.messages where id = %(msg)s",
    ("usage_logs", "select"): "select * from public.usage_logs",
    (
        "usage_logs",
        "insert",
    ): "insert into public.usage_logs (user_id, model) values (%(user)s, 'anon')",
    ("usage_logs", "update"): "update public.usage_logs set cost_usd = 0 where id = %(usage)s",
    ("usage_logs", "delete"): "delete from public.usage_logs where id = %(usage)s",
}


def _snapshot(w: World, seeded: Seeded) -> list[tuple[Any, ...]]:
    """Everything anon might have touched of one user's rows."""
    return w.truth(
        "select u.display_name, c.title, m.content, l.cost_usd,"
        " (select count(*) from public.conversations where user_id = u.id),"
        " (select count(*) from public.messages where user_id = u.id),"
        " (select count(*) from public.usage_logs where user_id = u.id)"
        " from public.users u, public.conversations c, public.messages m, public.usage_logs l"
        " where u.id = %s and c.id = %s and m.id = %s and l.id = %s",
        (seeded.user_id, seeded.conversation_id, seeded.message_id, seeded.usage_id),
    )


def _anon_denied(w: World, table: str, op: str) -> None:
    params = {
        "user": w.a.user_id,
        "conv": w.a.conversation_id,
        "msg": w.a.message_id,
        "usage": w.a.usage_id,
    }
    before = _snapshot(w, w.a)
    with acting_as(w, "anon") as conn:
        _denied(conn, ANON_STATEMENTS[(table, op)], params, _no_grant(table))
    assert _snapshot(w, w.a) == before == [(None, "seed", "hello", Decimal("0.01230000"), 1, 1, 1)]


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("table", TABLES)
@pytest.mark.parametrize("actor", ["A", "B", "anon"])
def test_rls_matrix_cell_allows_own_rows_and_denies_the_rest(
    world: World, actor: Actor, table: str, op: str
) -> None:
    if actor == "anon":
        _anon_denied(world, table, op)
    else:
        USER_CHECKS[(table, op)](world, actor)


# --- the rules DESIGN §7 names, each as its own test ----------------------------------------------
def test_user_cannot_add_message_to_another_users_conversation(world: World) -> None:
    b = world.b
    with acting_as(world, "A") as conn:
        for author in (world.a.user_id, b.user_id):  # as themself, or impersonating B
            _denied(
                conn,
                "insert into public.messages (conversation_id, user_id, role, content)"
                " values (%s, %s, 'assistant', 'planted')",
                (b.conversation_id, author),
                _rls("messages"),
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
        _denied(conn, statement, (world.a.usage_id,), _no_grant("usage_logs"))
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
        "insert into public.usage_logs (conversation_id, message_id, model, {}) values (%s, %s,"
        " 'gpt-4o', %s)"
    ).format(sql.Identifier(column))
    with (
        acting_as(world, "A") as conn,
        pytest.raises(psycopg.errors.CheckViolation, match=f"usage_logs_{column}_check"),
    ):
        conn.execute(query, (a.conversation_id, a.message_id, value))
    assert _usage_counts(world) == {a.user_id: 1, world.b.user_id: 1}


def test_user_cannot_record_usage_in_another_users_name(world: World) -> None:
    b = world.b
    with acting_as(world, "A") as conn:
        # B's id with A's own conversation, and B's id with no conversation at all.
        _denied(conn, _USAGE_INSERT, _usage(world.a, user=b.user_id), _rls("usage_logs"))
        _denied(conn, _USAGE_INSERT, _usage(b, conv=None, msg=None), _rls("usage_logs"))
    assert _usage_counts(world) == {world.a.user_id: 1, b.user_id: 1}


@pytest.mark.parametrize("pointing_at", ["conversation", "message", "both"])
def test_user_cannot_record_usage_pointing_at_another_users_rows(
    world: World, pointing_at: str
) -> None:
    a, b = world.a, world.b
    row = _usage(a)
    if pointing_at in ("conversation", "both"):
        row["conv"] = b.conversation_id
    if pointing_at in ("message", "both"):
        row["msg"] = b.message_id
    with acting_as(world, "A") as conn:
        _denied(conn, _USAGE_INSERT, row, _rls("usage_logs"))
    assert _usage_counts(world) == {a.user_id: 1, b.user_id: 1}


def test_user_cannot_change_profile_id_or_another_users_profile(world: World) -> None:
    a, b = world.a, world.b
    with acting_as(world, "A") as conn:
        _denied(
            conn,
            "update public.users set id = %s where id = %s",
            (b.user_id, a.user_id),
            _no_grant("users"),
        )
        _denied(
            conn,
            "update public.users set email = 'evil@rls.test' where id = %s",
            (a.user_id,),
            _no_grant("users"),
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
        _anon_denied(world, table, op)
    with acting_as(world, "anon") as conn:
        assert conn.execute("select auth.uid(), auth.role()").fetchone() == (None, "anon")


def test_service_role_sees_all_rows(world: World) -> None:
    mine = {world.a.user_id, world.b.user_id}
    with acting_as(world, "service_role") as conn:
        assert mine <= _ids(conn, "users")
        assert {world.a.conversation_id, world.b.conversation_id} <= _ids(conn, "conversations")
        assert {world.a.message_id, world.b.message_id} <= _ids(conn, "messages")
        assert {world.a.usage_id, world.b.usage_id} <= _ids(conn, "usage_logs")
        seen = [
            conn.execute(
                sql.SQL("select count(*) from {}").format(sql.Identifier("public", t))
            ).fetchone()
            for t in TABLES
        ]
    all_rows = [
        world.truth(
            sql.SQL("select count(*) from {}").format(  # type: ignore[arg-type]
                sql.Identifier("public", t)
            )
        )[0]
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
