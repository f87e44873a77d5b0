"""Make a cluster of our own look like Supabase's local database: roles, `auth`, passwords.

A real Supabase project has all of this already; only the embedded stack and tests need it.
"""

from __future__ import annotations

from importlib import resources

import psycopg
from psycopg import sql

from app.db.migrate import history_exists
from app.local.postgres import LOCAL_PASSWORD


def has_supabase_bootstrap(conn: psycopg.Connection) -> bool:
    row = conn.execute(
        "select to_regprocedure('auth.uid()') is not null"
        " and exists (select 1 from pg_roles where rolname = 'authenticated')"
        " and exists (select 1 from pg_roles where rolname = 'service_role')"
    ).fetchone()
    return bool(row and row[0])


def bootstrap_sql() -> str:
    return resources.files("app.local").joinpath("sql/bootstrap.sql").read_text()


_AUTH_UPGRADES = ("sql/auth_flows.sql", "sql/auth_mfa.sql", "sql/auth_oauth.sql")


def auth_upgrades_sql() -> str:
    folder = resources.files("app.local")
    return "\n".join(folder.joinpath(name).read_text() for name in _AUTH_UPGRADES)


def ensure_auth_upgrades(superuser_dsn: str) -> None:
    """The Auth stand-in's tables added after the first bootstrap (idempotent, every start)."""
    with psycopg.connect(superuser_dsn, autocommit=True) as conn, conn.transaction():
        conn.execute(auth_upgrades_sql())


def ensure_bootstrap(superuser_dsn: str) -> bool:
    """Create the Supabase roles, `auth` schema and helpers unless the database has them.

    Returns True when the bootstrap ran. Needs a superuser (a real Supabase already has all this).
    """
    with psycopg.connect(superuser_dsn, autocommit=True) as conn:
        if has_supabase_bootstrap(conn) and history_exists(conn):
            return False
        with conn.transaction():
            conn.execute(bootstrap_sql())  # no parameters: simple protocol, many statements
            conn.execute(auth_upgrades_sql())  # a fresh database is complete at once
    return True


def set_login_passwords(superuser_dsn: str, password: str) -> None:
    """Give the local cluster's login roles a password (Supabase local: postgres/postgres)."""
    with psycopg.connect(superuser_dsn, autocommit=True) as conn:
        for role in ("postgres", "authenticator", "supabase_auth_admin"):
            conn.execute(
                sql.SQL("alter role {} with login password {}").format(
                    sql.Identifier(role), sql.Literal(password)
                )
            )


def prepare_local_cluster(superuser_dsn: str) -> bool:
    """A cluster of our own, made like Supabase's local database: the bootstrap, and the login
    roles' local password. Returns whether the bootstrap ran."""
    ran = ensure_bootstrap(superuser_dsn)
    ensure_auth_upgrades(superuser_dsn)
    set_login_passwords(superuser_dsn, LOCAL_PASSWORD)
    return ran
