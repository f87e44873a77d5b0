"""Rows for the cross-user RLS probe, built from the catalogue of any schema.

To ask "can user B see user A's rows?" of a user's own migrations, user A needs a row in every
table first. `ProbeRows` finds one or inserts one with the connection's privileges (RLS
bypassed): the owner column gets A's id, NOT NULL foreign keys point at A's rows in the parent
table (built the same way, recursively), and other required columns get a plausible value for
their type, the first label of an enum, or a literal a CHECK (col = ANY (ARRAY[...])) allows.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

_MAX_DEPTH = 4
_MAX_ATTEMPTS = 6

# Candidate input text by pg_type.typcategory; sent untyped so PostgreSQL casts to the column.
_BY_CATEGORY: dict[str, tuple[str, ...]] = {
    "S": ("probe", "x", "probe@example.com", "https://example.com/probe"),
    "N": ("1", "0", "100"),
    "B": ("false", "true"),
    "D": ("now",),
    "T": ("1 hour",),
    "I": ("127.0.0.1",),
    "A": ("{}",),
}
_BY_TYPE: dict[str, tuple[str, ...]] = {
    "json": ("{}", "[]"),
    "jsonb": ("{}", "[]"),
    "bytea": ("\\x00",),
}
_QUOTED = re.compile(r"'((?:[^']|'')*)'")


class ProbeError(RuntimeError):
    """No probe row could be built for a table; the message says which column or constraint."""


@dataclass(frozen=True)
class Column:
    name: str
    base_type: str  # pg_type.typname, domains resolved to their base type
    category: str  # pg_type.typcategory of the base type
    enum_labels: tuple[str, ...]
    required: bool  # NOT NULL and nothing (default, identity, generation) fills it


@dataclass(frozen=True)
class ForeignKey:
    columns: tuple[str, ...]
    ref_oid: int
    ref_columns: tuple[str, ...]


@dataclass(frozen=True)
class TableInfo:
    oid: int
    schema: str
    name: str
    columns: tuple[Column, ...]
    foreign_keys: tuple[ForeignKey, ...]
    checks: dict[str, tuple[str, tuple[str, ...]]]  # name -> (definition, columns)
    owner_column: str | None

    @property
    def label(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def ident(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.name)


def load_table(conn: psycopg.Connection, oid: int, auth_users: int | None) -> TableInfo:
    """Columns, foreign keys and CHECK constraints of a table, and its owner column."""
    head = conn.execute(
        "select n.nspname, c.relname from pg_catalog.pg_class c"
        " join pg_catalog.pg_namespace n on n.oid = c.relnamespace where c.oid = %s",
        [oid],
    ).fetchone()
    if head is None:
        raise ProbeError(f"table {oid} vanished")
    columns = tuple(
        Column(name, base_type, category, tuple(labels), required)
        for name, base_type, category, labels, required in conn.execute(
            """
            select a.attname, bt.typname, bt.typcategory,
                   array(select e.enumlabel from pg_catalog.pg_enum e
                         where e.enumtypid = bt.oid order by e.enumsortorder),
                   a.attnotnull and not a.atthasdef and a.attidentity = ''
                     and a.attgenerated = ''
            from pg_catalog.pg_attribute a
            join pg_catalog.pg_type t on t.oid = a.atttypid
            join pg_catalog.pg_type bt
              on bt.oid = case when t.typtype = 'd' then t.typbasetype else t.oid end
            where a.attrelid = %s and a.attnum > 0 and not a.attisdropped
            order by a.attnum
            """,
            [oid],
        ).fetchall()
    )
    constraints = conn.execute(
        """
        select ct.contype::text, ct.conname, pg_catalog.pg_get_constraintdef(ct.oid),
               array(select a.attname from unnest(ct.conkey) with ordinality as k(n, ord)
                     join pg_catalog.pg_attribute a on a.attrelid = ct.conrelid and a.attnum = k.n
                     order by k.ord),
               ct.confrelid::int,
               array(select a.attname from unnest(ct.confkey) with ordinality as k(n, ord)
                     join pg_catalog.pg_attribute a on a.attrelid = ct.confrelid and a.attnum = k.n
                     order by k.ord)
        from pg_catalog.pg_constraint ct
        where ct.conrelid = %s and ct.contype in ('c', 'f')
        order by ct.conname
        """,
        [oid],
    ).fetchall()
    fkeys = tuple(
        ForeignKey(tuple(cols), ref, tuple(ref_cols))
        for kind, _, _, cols, ref, ref_cols in constraints
        if kind == "f"
    )
    checks = {
        name: (text, tuple(cols)) for kind, name, text, cols, _, _ in constraints if kind == "c"
    }
    schema, name = head
    owner = _owner_column(name, columns, fkeys, auth_users)
    return TableInfo(oid, schema, name, columns, fkeys, checks, owner)


def _owner_column(
    name: str, columns: tuple[Column, ...], fkeys: tuple[ForeignKey, ...], auth_users: int | None
) -> str | None:
    """`user_id` (uuid); else `id` (uuid) of a table named `users` or referencing auth.users."""
    uuid_columns = {c.name for c in columns if c.base_type == "uuid"}
    if "user_id" in uuid_columns:
        return "user_id"
    id_is_auth_user = any(fk.columns == ("id",) and fk.ref_oid == auth_users for fk in fkeys)
    if "id" in uuid_columns and (name == "users" or id_is_auth_user):
        return "id"
    return None


class ProbeRows:
    """Finds or inserts rows for probe users, inside a transaction that will be rolled back."""

    def __init__(self, conn: psycopg.Connection, auth_users: int | None) -> None:
        self._conn = conn
        self._auth_users = auth_users
        self._tables: dict[int, TableInfo] = {}
        self._rows: dict[tuple[int, uuid.UUID | None], dict[str, Any]] = {}

    def table(self, oid: int) -> TableInfo:
        if oid not in self._tables:
            self._tables[oid] = load_table(self._conn, oid, self._auth_users)
        return self._tables[oid]

    def row(self, table: TableInfo, user: uuid.UUID, depth: int = 0) -> dict[str, Any]:
        """A row of `table` owned by `user` (or, for a table without owner, any row)."""
        key = (table.oid, user if table.owner_column else None)
        if key not in self._rows:
            found = self._existing(table, user)
            if found is None:
                fixed, synthetic = self.values(table, user, depth)
                found = self._insert(table, fixed, synthetic)
            self._rows[key] = found
        return self._rows[key]

    def values(
        self, table: TableInfo, user: uuid.UUID, depth: int = 0
    ) -> tuple[dict[str, Any], list[Column]]:
        """What a new row of `table` owned by `user` needs: fixed values, columns to synthesise."""
        if depth > _MAX_DEPTH:
            raise ProbeError(f"{table.label}: foreign keys nest deeper than {_MAX_DEPTH}")
        required = {c.name for c in table.columns if c.required}
        fixed: dict[str, Any] = {}
        for fk in table.foreign_keys:
            if not (required | {table.owner_column}) & set(fk.columns):
                continue  # a nullable foreign key stays NULL
            if fk.ref_oid == self._auth_users:
                fixed |= dict.fromkeys(fk.columns, user)
                continue
            parent = self.row(self.table(fk.ref_oid), user, depth + 1)
            fixed |= {col: parent[ref] for col, ref in zip(fk.columns, fk.ref_columns, strict=True)}
        if table.owner_column:
            fixed[table.owner_column] = user
        synthetic = [c for c in table.columns if c.required and c.name not in fixed]
        return fixed, synthetic

    def candidates(self, table: TableInfo, column: Column) -> tuple[str, ...]:
        allowed = tuple(
            literal.replace("''", "'")
            for text, cols in table.checks.values()
            if cols == (column.name,) and "ANY (ARRAY[" in text
            for literal in _QUOTED.findall(text)
        )
        found = allowed + column.enum_labels
        found += _BY_TYPE.get(column.base_type, ())
        if column.base_type == "uuid":
            found += (str(uuid.uuid4()),)
        found += _BY_CATEGORY.get(column.category, ())
        if not found:
            raise ProbeError(
                f"{table.label}: no probe value for required column {column.name}"
                f" of type {column.base_type}"
            )
        return found

    def _existing(self, table: TableInfo, user: uuid.UUID) -> dict[str, Any] | None:
        query = sql.SQL("select * from {} {} limit 1").format(
            table.ident,
            sql.SQL("where {} = %s").format(sql.Identifier(table.owner_column))
            if table.owner_column
            else sql.SQL(""),
        )
        with self._conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(query, [user] if table.owner_column else []).fetchone()

    def _insert(
        self, table: TableInfo, fixed: dict[str, Any], synthetic: list[Column]
    ) -> dict[str, Any]:
        """Insert, moving a synthetic column to its next candidate when a constraint rejects it."""
        options = {c.name: self.candidates(table, c) for c in synthetic}
        choice = dict.fromkeys(options, 0)
        for _ in range(_MAX_ATTEMPTS):
            values = fixed | {name: options[name][i] for name, i in choice.items()}
            try:
                return insert_row(self._conn, table, values)
            except (psycopg.errors.CheckViolation, psycopg.errors.StringDataRightTruncation) as exc:
                constraint = exc.diag.constraint_name or ""
                culprits = set(table.checks.get(constraint, ("", tuple(choice)))[1])
                bumped = [n for n in choice if n in culprits and choice[n] + 1 < len(options[n])]
                if not bumped:
                    raise ProbeError(f"{table.label}: {exc.diag.message_primary}") from exc
                for name in bumped:
                    choice[name] += 1
            except psycopg.Error as exc:
                raise ProbeError(f"{table.label}: {exc.diag.message_primary or exc}") from exc
        raise ProbeError(f"{table.label}: no combination of probe values satisfies its checks")


def insert_statement(table: TableInfo, columns: list[str]) -> sql.Composed:
    """`insert into t (cols) values (%s, ...)`: identifiers quoted, values left to bind."""
    if not columns:
        return sql.SQL("insert into {} default values").format(table.ident)
    return sql.SQL("insert into {} ({}) values ({})").format(
        table.ident,
        sql.SQL(", ").join(sql.Identifier(name) for name in columns),
        sql.SQL(", ").join(sql.Placeholder() * len(columns)),
    )


def insert_row(
    conn: psycopg.Connection, table: TableInfo, values: dict[str, Any]
) -> dict[str, Any]:
    """INSERT one row in a savepoint and return it as the table stores it."""
    query = sql.SQL("{} returning *").format(insert_statement(table, list(values)))
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(query, list(values.values())).fetchone()
    if row is None:  # a BEFORE trigger returned NULL
        raise ProbeError(f"{table.label}: a trigger discarded the probe row")
    return row
