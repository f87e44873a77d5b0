"""The Auth stand-in's later tables reach a cluster bootstrapped before they existed."""

from __future__ import annotations

import psycopg

from app.local.cluster import ensure_auth_upgrades
from tests.support.database import FreshDatabase


def _has_flow_state(dsn: str) -> bool:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("select to_regclass('auth.flow_state') is not null").fetchone()
    return bool(row and row[0])


def test_auth_upgrades_add_flow_state_to_an_old_cluster_and_rerun_cleanly(
    fresh_db: FreshDatabase,
) -> None:
    # An old cluster: bootstrapped before the flow tables existed (a fresh bootstrap has them now).
    with psycopg.connect(fresh_db.superuser_dsn, autocommit=True) as conn:
        conn.execute("drop table auth.flow_state cascade")
    assert not _has_flow_state(fresh_db.superuser_dsn)

    ensure_auth_upgrades(fresh_db.superuser_dsn)
    ensure_auth_upgrades(fresh_db.superuser_dsn)  # every start runs it again

    assert _has_flow_state(fresh_db.superuser_dsn)
    with psycopg.connect(fresh_db.superuser_dsn) as conn:
        owner = conn.execute(
            "select tableowner from pg_tables"
            " where schemaname = 'auth' and tablename = 'flow_state'"
        ).fetchone()
    assert owner == ("supabase_auth_admin",)
