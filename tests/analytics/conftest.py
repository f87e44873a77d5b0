"""One seeded database shared by the analytics tests that only read it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.local.stack import LocalStack
from tests.analytics.seeding import seeded_database
from tests.support.database import FreshDatabase


@pytest.fixture(scope="package")
def seeded_db(local_stack: LocalStack) -> Iterator[FreshDatabase]:
    """Migrated and seeded (`seeding.SPEC`); tests must not write to it."""
    with seeded_database(local_stack) as db:
        yield db
