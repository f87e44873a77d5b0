"""The embedded database for tests: settings that never read .env, fresh bootstrapped databases."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from app.config import Settings
from app.db.migrate import default_migrations_dir
from app.local.cluster import ensure_bootstrap
from app.local.postgres import LOCAL_PASSWORD
from app.local.stack import LocalStack

ROOT = Path(__file__).resolve().parents[2]


MIGRATIONS = default_migrations_dir()


def make_settings(**overrides: object) -> Settings:
    """Settings for tests: never read the developer's .env."""
    return Settings(_env_file=None, **overrides)  # type: ignore[call-arg]


@dataclass(frozen=True)
class FreshDatabase:
    name: str
    superuser_dsn: str
    dsn: str  # as `postgres`, the non-superuser that owns user objects (as on Supabase)


@contextmanager
def fresh_database(local_stack: LocalStack) -> Iterator[FreshDatabase]:
    """An empty database on the session cluster, bootstrapped like Supabase, dropped after."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = local_stack.pg.superuser_dsn
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    try:
        db = FreshDatabase(
            name=name,
            superuser_dsn=local_stack.pg.dsn(dbname=name),
            dsn=local_stack.pg.dsn("postgres", LOCAL_PASSWORD, name),
        )
        ensure_bootstrap(db.superuser_dsn)
        yield db
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database {} with (force)").format(sql.Identifier(name)))
