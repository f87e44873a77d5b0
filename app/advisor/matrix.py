"""Check 8: the cross-user RLS matrix, run as the real API roles with real JWT claims.

Two throw-away users A and B are inserted into `auth.users` inside a transaction that is always
rolled back (the connection needs a role that may do that: Supabase's `postgres`). For every
table in an exposed schema with an owner column (`user_id`, or `users.id` / an `id` referencing
auth.users) a row of A's is found or built (`probe.ProbeRows`), then — with `set local role` and
`request.jwt.claims` exactly as PostgREST sets them — user B must not read, update or delete it,
nor insert a row with A's id, and `anon` must read no row at all. "Denied" is either zero rows
(a USING filter) or 42501 (a missing grant or a failed WITH CHECK).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from app.advisor.catalog import exposed_schemas
from app.advisor.probe import Column, ProbeError, ProbeRows, TableInfo, insert_statement
from app.advisor.result import CheckResult

NAME = "cross_user_rls"
_DENIED = "42501"


@dataclass(frozen=True)
class _User:
    id: uuid.UUID
    email: str

    @property
    def claims(self) -> dict[str, Any]:
        return {
            "sub": str(self.id),
            "role": "authenticated",
            "aud": "authenticated",
            "email": self.email,
            "app_metadata": {"provider": "email"},
            "user_metadata": {},
            "is_anonymous": False,
        }


class _Skip(Exception):  # noqa: N818 - control flow inside this module only
    """The check cannot run with this connection's privileges."""


class _SignupFails(Exception):  # noqa: N818 - control flow inside this module only
    """Inserting a plain user into auth.users fails: signups would fail the same way."""


def check_cross_user_rls(conn: psycopg.Connection) -> CheckResult:
    """User B can't read/update/delete A's rows or insert as A; anon reads nothing. Rolled back."""
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        raise ValueError("check_cross_user_rls needs a connection outside a transaction")
    schemas = exposed_schemas(conn)
    try:
        with conn.transaction(force_rollback=True):
            conn.execute("set local statement_timeout = '30s'")
            conn.execute(
                sql.SQL("set local search_path to {}").format(
                    sql.SQL(", ").join(sql.Identifier(s) for s in [*schemas, "extensions"])
                )
            )
            return _run(conn, schemas)
    except _Skip as exc:
        return CheckResult(NAME, "ERROR", True, [str(exc)], skipped=True)
    except _SignupFails as exc:
        return CheckResult(NAME, "ERROR", False, [str(exc)])


def _run(conn: psycopg.Connection, schemas: list[str]) -> CheckResult:
    auth_users = _auth_users_oid(conn)
    a, b = _create_users(conn)
    has_anon = _can_act_as(conn, "anon")
    probe = ProbeRows(conn, auth_users)
    findings: list[str] = []
    notes: list[str] = []
    probed: list[str] = []
    for oid in _candidate_tables(conn, schemas):
        table = probe.table(oid)
        if table.owner_column is None:
            continue
        try:
            probe.row(table, a.id)
            insert_values = probe.values(table, a.id)
        except ProbeError as exc:
            notes.append(f"not probed: {exc}")
            continue
        probed.append(table.label)
        findings += _probe_table(conn, probe, table, (a, b), insert_values, notes)
        if has_anon:
            findings += _probe_anon(conn, table, notes)
    summary: list[str] = []
    if probed and not findings:
        anon = "anon reads no rows" if has_anon else "no anon role to probe"
        summary = [
            f"probed {', '.join(probed)}: user B cannot read, update or delete user A's rows,"
            f" nor insert rows as A; {anon}"
        ]
    elif not probed and not notes:
        summary = [f"no table with an owner column (user_id, users.id) in {', '.join(schemas)}"]
    return CheckResult(NAME, "ERROR", not findings, findings + summary + notes)


def _auth_users_oid(conn: psycopg.Connection) -> int:
    row = conn.execute(  # not to_regclass: it needs USAGE on schema auth
        "select c.oid::int from pg_catalog.pg_class c"
        " join pg_catalog.pg_namespace n on n.oid = c.relnamespace"
        " where n.nspname = 'auth' and c.relname = 'users'"
    ).fetchone()
    if not row or row[0] is None:
        raise _Skip("skipped: no auth.users table (not a Supabase database)")
    return int(row[0])


def _create_users(conn: psycopg.Connection) -> tuple[_User, _User]:
    ids = (uuid.uuid4(), uuid.uuid4())
    users = tuple(_User(u, f"rls-probe-{u.hex[:12]}@example.invalid") for u in ids)
    try:
        with conn.transaction():
            for user in users:
                conn.execute(
                    "insert into auth.users (instance_id, id, aud, role, email, raw_app_meta_data,"
                    " raw_user_meta_data, created_at, updated_at)"
                    " values ('00000000-0000-0000-0000-000000000000', %s, 'authenticated',"
                    " 'authenticated', %s, '{\"provider\": \"email\"}', '{}', now(), now())",
                    [user.id, user.email],
                )
    except psycopg.errors.InsufficientPrivilege as exc:
        raise _Skip(
            f"skipped: needs privileges: {conn.info.user} cannot insert into auth.users"
            " (run with the postgres DSN)"
        ) from exc
    except psycopg.Error as exc:  # e.g. an on-signup trigger that breaks
        raise _SignupFails(
            f"creating a user in auth.users fails, so would every signup: {exc.diag.sqlstate}:"
            f" {exc.diag.message_primary} ({exc.diag.context or 'no context'})".strip()
        ) from exc
    if not _can_act_as(conn, "authenticated"):
        raise _Skip(f"skipped: needs privileges: {conn.info.user} cannot SET ROLE authenticated")
    return users[0], users[1]


def _can_act_as(conn: psycopg.Connection, role: str) -> bool:
    try:
        with conn.transaction(force_rollback=True):
            conn.execute(sql.SQL("set local role {}").format(sql.Identifier(role)))
    except (psycopg.errors.InsufficientPrivilege, psycopg.errors.InvalidParameterValue):
        return False
    return True


def _candidate_tables(conn: psycopg.Connection, schemas: list[str]) -> list[int]:
    rows = conn.execute(
        """
        select c.oid::int
        from pg_catalog.pg_class c
        join pg_catalog.pg_namespace n on n.oid = c.relnamespace
        where c.relkind in ('r', 'p') and not c.relispartition and n.nspname = any(%s)
          and not exists (select 1 from pg_catalog.pg_depend d
                          where d.objid = c.oid and d.deptype = 'e')
        order by n.nspname, c.relname
        """,
        [schemas],
    ).fetchall()
    return [r[0] for r in rows]


@contextmanager
def _acting_as(conn: psycopg.Connection, role: str, claims: dict[str, Any]) -> Iterator[None]:
    """A savepoint, always rolled back, acting as PostgREST would for `claims`."""
    with conn.transaction(force_rollback=True):
        conn.execute(sql.SQL("set local role {}").format(sql.Identifier(role)))
        conn.execute("select set_config('request.jwt.claims', %s, true)", [json.dumps(claims)])
        yield


def _attempt(
    conn: psycopg.Connection,
    user: _User,
    statement: sql.Composed,
    params: list[Any],
    observe: sql.Composed | None = None,
    observe_params: tuple[Any, ...] = (),
) -> tuple[Any, psycopg.Error | None]:
    """Run `statement` as `user`, then `observe` A's rows with the connection's own rights.

    Without `observe`, the statement's own first value is returned. Everything happens in one
    savepoint that is rolled back, so each attempt starts from the same rows.
    """
    try:
        with _acting_as(conn, "authenticated", user.claims):
            cur = conn.execute(statement, params)
            if observe is not None:
                conn.execute("reset role")
                cur = conn.execute(observe, observe_params)
            row = cur.fetchone()
            return (row[0] if row else None), None
    except psycopg.Error as exc:
        return None, exc


def _probe_table(
    conn: psycopg.Connection,
    probe: ProbeRows,
    table: TableInfo,
    users: tuple[_User, _User],
    insert_values: tuple[dict[str, Any], list[Column]],
    notes: list[str],
) -> list[str]:
    """User B against user A's rows: read as the API does (filtered), write with no WHERE.

    Writes go unfiltered on purpose: a WHERE that reads columns makes PostgreSQL apply the SELECT
    policies as well, which would hide an UPDATE or DELETE policy that forgets the owner (an RPC
    running `delete from t` as the caller is not hidden by it). What B's statement did to A's rows
    is observed with the connection's rights inside the same rolled-back savepoint.
    """
    assert table.owner_column is not None
    a, b = users
    label, ident, owner = table.label, table.ident, sql.Identifier(table.owner_column)
    count_a = sql.SQL("select count(*) from {} where {} = %s").format(ident, owner)
    versions_a = sql.SQL(
        "select coalesce(array_agg(ctid::text order by ctid), '{{}}') from {} where {} = %s"
    ).format(ident, owner)
    before = _scalar(conn, count_a, [a.id])
    before_versions = set(_scalar_list(conn, versions_a, [a.id]))
    findings: list[str] = []

    read, error = _attempt(conn, b, count_a, [a.id])
    if read:
        findings.append(f"{label}: user B reads {read} of user A's rows")
    _note(notes, error, f"{label}: user B reads")

    column, current = _update_target(conn, table, a.id)
    update = sql.SQL("update {} set {} = %s").format(ident, sql.Identifier(column))
    versions, error = _attempt(conn, b, update, [current], versions_a, (a.id,))
    if versions is not None and before_versions - set(versions):
        changed = len(before_versions - set(versions))
        findings.append(f"{label}: user B updates {changed} of user A's rows")
    _note(notes, error, f"{label}: user B updates")

    left, error = _attempt(conn, b, sql.SQL("delete from {}").format(ident), [], count_a, (a.id,))
    if left is not None and left < before:
        findings.append(f"{label}: user B deletes {before - left} of user A's rows")
    _note(notes, error, f"{label}: user B deletes")

    fixed, synthetic = insert_values
    values = fixed | {c.name: probe.candidates(table, c)[0] for c in synthetic}
    # No RETURNING: it would apply SELECT policies and hide an open INSERT policy.
    insert = insert_statement(table, list(values))
    after, error = _attempt(conn, b, insert, list(values.values()), count_a, (a.id,))
    if after is not None and after > before:
        findings.append(f"{label}: user B inserts a row with user A's {table.owner_column}")
    elif error is not None and (error.sqlstate or "").startswith("23"):
        # RLS WITH CHECK runs before constraints: reaching one means the policy let it through.
        findings.append(
            f"{label}: user B's insert with user A's {table.owner_column} passes RLS;"
            f" only a constraint stopped it ({error.diag.message_primary})"
        )
    else:
        _note(notes, error, f"{label}: user B inserts")
    return findings


def _note(notes: list[str], error: psycopg.Error | None, what: str) -> None:
    """A refusal other than 42501 proves nothing either way: say so instead of passing silently."""
    if error is not None and error.sqlstate != _DENIED:
        notes.append(f"{what} inconclusive: {error.diag.message_primary or error}")


def _update_target(conn: psycopg.Connection, table: TableInfo, owner: uuid.UUID) -> tuple[str, Any]:
    """A column `authenticated` may UPDATE (non-owner first, else the owner), and A's value as text.

    Setting a row's column to its own value changes nothing but the row version (ctid), which is
    how the probe sees that B's UPDATE reached A's row.
    """
    row = conn.execute(
        """
        select a.attname from pg_catalog.pg_attribute a
        where a.attrelid = %s and a.attnum > 0 and not a.attisdropped and a.attgenerated = ''
          and a.attidentity <> 'a'
          and pg_catalog.has_column_privilege('authenticated', a.attrelid, a.attnum, 'UPDATE')
        order by a.attname = %s, a.attnum
        limit 1
        """,
        [table.oid, table.owner_column],
    ).fetchone()
    column = str(row[0]) if row else str(table.owner_column)
    value = conn.execute(
        sql.SQL("select {}::text from {} where {} = %s limit 1").format(
            sql.Identifier(column), table.ident, sql.Identifier(str(table.owner_column))
        ),
        [owner],
    ).fetchone()
    return column, value[0] if value else None


def _probe_anon(conn: psycopg.Connection, table: TableInfo, notes: list[str]) -> list[str]:
    try:
        with _acting_as(conn, "anon", {"role": "anon"}):
            seen = _scalar(conn, sql.SQL("select count(*) from {}").format(table.ident), [])
    except psycopg.Error as exc:
        if exc.sqlstate != _DENIED:
            notes.append(f"{table.label}: anon reads inconclusive: {exc.diag.message_primary}")
        return []
    return [f"{table.label}: anon reads {seen} rows"] if seen else []


def _scalar(conn: psycopg.Connection, query: sql.Composed, params: list[Any]) -> int:
    row = conn.execute(query, params).fetchone()
    return int(row[0]) if row else 0


def _scalar_list(conn: psycopg.Connection, query: sql.Composed, params: list[Any]) -> list[Any]:
    row = conn.execute(query, params).fetchone()
    return list(row[0]) if row and row[0] is not None else []
