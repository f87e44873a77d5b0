"""The RLS tests' world: users seeded as the service would, and requests made as PostgREST does.

`acting_as` is one request as PostgREST runs it: logged in as `authenticator`, one
transaction, `set_config('role', …, true)` and `request.jwt.claims` as JSON with `sub` and `role`.
`World.truth` reads rows back as the superuser, past RLS, after the request committed.
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

    def truth(self, query: str | sql.Composed, params: Any = ()) -> list[tuple[Any, ...]]:
        """Rows as the superuser sees them (no RLS), after the actor's transaction committed."""
        with psycopg.connect(self.stack.pg.superuser_dsn) as conn:
            return conn.execute(query, params).fetchall()


def create_user(stack: LocalStack) -> uuid.UUID:
    user_id = uuid.uuid4()
    with psycopg.connect(stack.pg.superuser_dsn) as conn:
        conn.execute(
            "insert into auth.users (id, aud, role, email, raw_user_meta_data, created_at,"
            " updated_at) values (%s, 'authenticated', 'authenticated', %s, '{}', now(), now())",
            (user_id, f"{user_id}@rls.test"),
        )
    return user_id


def seed(stack: LocalStack, user_id: uuid.UUID) -> Seeded:
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


def delete_auth_users(stack: LocalStack, *ids: uuid.UUID) -> None:
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


def ids(conn: psycopg.Connection[tuple[Any, ...]], table: str, column: str = "id") -> set[Any]:
    query = sql.SQL("select {} from {}").format(
        sql.Identifier(column), sql.Identifier("public", table)
    )
    return {r[0] for r in conn.execute(query)}


def denied(
    conn: psycopg.Connection[tuple[Any, ...]], query: str | sql.Composed, params: Any, match: str
) -> None:
    """The statement fails with 42501; a savepoint keeps the request transaction usable."""
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match=match), conn.transaction():
        conn.execute(query, params)


def no_grant(table: str) -> str:
    return f"permission denied for table {table}"


def rls_violation(table: str) -> str:
    return f'new row violates row-level security policy for table "{table}"'


def touches_only_own_row(conn: psycopg.Connection[tuple[Any, ...]], statement: str) -> None:
    """An unfiltered UPDATE/DELETE reads no column, so only its own policy applies (a WHERE clause
    would bring in the SELECT policy too and hide a missing one). Always rolled back."""
    with conn.transaction(force_rollback=True):
        assert conn.execute(statement).rowcount == 1


USAGE_INSERT = (
    "insert into public.usage_logs (user_id, conversation_id, message_id, model, tokens_in,"
    " tokens_out, cost_usd) values (%(user)s, %(conv)s, %(msg)s, 'gpt-4o', %(tin)s, %(tout)s,"
    " %(cost)s) returning user_id"
)


def usage_row(seeded: Seeded, **overrides: Any) -> dict[str, Any]:
    row = {
        "user": seeded.user_id,
        "conv": seeded.conversation_id,
        "msg": seeded.message_id,
        "tin": 5,
        "tout": 7,
        "cost": Decimal("0.001"),
    }
    return row | overrides


def usage_counts(w: World) -> dict[uuid.UUID, int]:
    return dict(
        w.truth(
            "select user_id, count(*) from public.usage_logs where user_id = any(%s)"
            " group by user_id",
            ([w.a.user_id, w.b.user_id],),
        )
    )


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


def snapshot(w: World, seeded: Seeded) -> list[tuple[Any, ...]]:
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


def anon_denied(w: World, table: str, op: str) -> None:
    params = {
        "user": w.a.user_id,
        "conv": w.a.conversation_id,
        "msg": w.a.message_id,
        "usage": w.a.usage_id,
    }
    before = snapshot(w, w.a)
    with acting_as(w, "anon") as conn:
        denied(conn, ANON_STATEMENTS[(table, op)], params, no_grant(table))
    assert snapshot(w, w.a) == before == [(None, "seed", "hello", Decimal("0.01230000"), 1, 1, 1)]
