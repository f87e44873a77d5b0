"""Seeded databases for analytics tests: a fresh, migrated database with a small realistic seed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from app.analytics.seed import SeedSpec
from app.analytics.seed_copy import SeedResult, seed_database
from app.core.pricing import Pricer
from app.db.migrate import apply_migrations
from app.local.stack import LocalStack
from tests.support.database import MIGRATIONS, FreshDatabase, fresh_database, make_settings

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
    with fresh_database(local_stack) as db:
        migrate_and_seed(db, spec)
        yield db
