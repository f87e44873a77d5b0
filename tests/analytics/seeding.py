"""Seeded databases for analytics tests: a fresh, migrated database with a small realistic seed."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import psycopg
from psycopg import sql

from app.analytics.seed import SeedSpec
from app.analytics.seed_copy import SeedResult, seed_database
from app.local.migrate import apply_migrations, ensure_bootstrap
from app.local.postgres import LOCAL_PASSWORD
from app.local.stack import LocalStack
from app.pricing import Pricer
from tests.conftest import MIGRATIONS, FreshDatabase, make_settings

# Several models, cache tokens of both kinds, partial and error rows, a runaway day or two.
SPEC = SeedSpec(users=40, days=20, requests=4000, seed=11, end=datetime(2026, 11, 20, tzinfo=UTC))


def seed(dsn: str, spec: SeedSpec = SPEC) -> SeedResult:
    return seed_database(dsn, spec, Pricer(make_settings()))


def migrate_and_seed(db: FreshDatabase, spec: SeedSpec = SPEC) -> SeedResult:
    """Apply the project's migrations to `db` and load `spec` as `postgres` (as on Supabase)."""
    apply_migrations(db.dsn, MIGRATIONS)
    return seed(db.dsn, spec)


@contextmanager
def seeded_database(local_stack: LocalStack, spec: SeedSpec = SPEC) -> Iterator[FreshDatabase]:
    """Like the `fresh_db` fixture, migrated and seeded, for fixtures wider than one test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = local_stack.pg.superuser_dsn
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    db = FreshDatabase(
        name=name,
        superuser_dsn=local_stack.pg.dsn(dbname=name),
        dsn=local_stack.pg.dsn("postgres", LOCAL_PASSWORD, name),
    )
    try:
        ensure_bootstrap(db.superuser_dsn)
        migrate_and_seed(db, spec)
        yield db
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database {} with (force)").format(sql.Identifier(name)))
