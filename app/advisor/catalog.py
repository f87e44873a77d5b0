"""Catalogue facts every check shares: which schemas are exposed, which are Supabase's own.

Splinter decides "exposed" from `current_setting('pgrst.db_schemas', true)`;
we do the same, defaulting to `public` when the setting is absent, so `run_checks(schemas=...)`
only has to set it for the session.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

# Schemas owned by Supabase, PostgreSQL or extensions: never the user's objects (splinter's list).
SYSTEM_SCHEMAS: tuple[str, ...] = (
    "_analytics", "_realtime", "_timescaledb_cache", "_timescaledb_catalog", "_timescaledb_config",
    "_timescaledb_internal", "auth", "cron", "extensions", "graphql", "graphql_public",
    "information_schema", "net", "pg_catalog", "pg_toast", "pgbouncer", "pgmq", "pgroonga",
    "pgsodium", "pgsodium_masks", "pgtle", "realtime", "repack", "storage", "supabase_functions",
    "supabase_migrations", "tiger", "topology", "vault",
)  # fmt: skip

API_ROLES: tuple[str, ...] = ("anon", "authenticated")

COMMANDS = {"r": "SELECT", "a": "INSERT", "w": "UPDATE", "d": "DELETE", "*": "ALL"}


def exposed_schemas(conn: psycopg.Connection) -> list[str]:
    """The schemas the Data API serves: `pgrst.db_schemas` (comma separated), else `public`."""
    row = conn.execute("select current_setting('pgrst.db_schemas', true)").fetchone()
    raw = (row[0] if row else None) or "public"
    names = [part.strip().strip('"') for part in raw.split(",")]
    return [name for name in names if name] or ["public"]


def existing_api_roles(conn: psycopg.Connection) -> list[str]:
    """`anon` and `authenticated` where they exist (a plain PostgreSQL may lack them)."""
    rows = conn.execute(
        "select rolname from pg_catalog.pg_roles where rolname = any(%s) order by rolname",
        [list(API_ROLES)],
    ).fetchall()
    return [r[0] for r in rows]


@dataclass(frozen=True)
class Policy:
    """A row-level security policy as `pg_policies` shows it (expressions deparsed)."""

    schema: str
    table: str
    name: str
    command: str  # SELECT, INSERT, UPDATE, DELETE or ALL
    roles: tuple[str, ...]  # role names; "public" for PUBLIC
    permissive: bool
    rls_enabled: bool
    qual: str | None
    with_check: str | None

    @property
    def label(self) -> str:
        return f'{self.schema}.{self.table}: policy "{self.name}"'

    def applies_to(self, role: str) -> bool:
        return "public" in self.roles or role in self.roles


def policies(conn: psycopg.Connection, *, schemas: list[str] | None = None) -> list[Policy]:
    """Policies on tables in `schemas`, or in every non-system schema when None.

    The caller's `search_path` decides how expressions are deparsed: with `search_path = ''`
    every function shows schema-qualified (`auth.uid()`), which the text checks rely on.
    """
    rows = conn.execute(
        """
        select n.nspname, c.relname, p.polname, p.polcmd::text, p.polpermissive,
               c.relrowsecurity,
               array(select case when r = 0 then 'public' else pg_catalog.quote_ident(
                       (select rolname from pg_catalog.pg_roles where oid = r)) end
                     from unnest(p.polroles) as r order by 1),
               pg_catalog.pg_get_expr(p.polqual, p.polrelid),
               pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid)
        from pg_catalog.pg_policy p
        join pg_catalog.pg_class c on c.oid = p.polrelid
        join pg_catalog.pg_namespace n on n.oid = c.relnamespace
        where case when %(schemas)s::text[] is null then n.nspname <> all(%(system)s)
                   else n.nspname = any(%(schemas)s) end
        order by 1, 2, 3
        """,
        {"schemas": schemas, "system": list(SYSTEM_SCHEMAS)},
    ).fetchall()
    return [
        Policy(
            schema=r[0],
            table=r[1],
            name=r[2],
            command=COMMANDS[r[3]],
            permissive=r[4],
            rls_enabled=r[5],
            roles=tuple(r[6]),
            qual=r[7],
            with_check=r[8],
        )
        for r in rows
    ]
