"""`validate`: apply or not, a failing migration as a failed check, unreachable databases."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from app.advisor import CHECK_NAMES, SetupError, validate
from app.local.postgres import free_port
from app.local.scratch import ScratchError, fresh_database
from tests.advisor.cases import migrations_with
from tests.support.database import MIGRATIONS, FreshDatabase


def test_validate_with_apply_records_the_migrations_then_checks(fresh_db: FreshDatabase) -> None:
    outcome = validate(MIGRATIONS, db_url=fresh_db.dsn, apply=True)

    assert outcome.passed
    assert [r.name for r in outcome.results] == list(CHECK_NAMES)
    assert outcome.applied == sorted(p.stem for p in MIGRATIONS.glob("*.sql"))
    assert outcome.database.endswith(f"/{fresh_db.name}")


def test_validate_without_apply_only_checks(fresh_db: FreshDatabase) -> None:
    outcome = validate(MIGRATIONS, db_url=fresh_db.dsn)

    assert outcome.passed and outcome.applied == []
    assert [r.name for r in outcome.results] == list(CHECK_NAMES[1:])
    assert outcome.results[-1].details == [
        "no table with an owner column (user_id, users.id) in public"
    ]
    with psycopg.connect(fresh_db.dsn) as conn:
        row = conn.execute("select count(*) from supabase_migrations.schema_migrations").fetchone()
    assert row == (0,)


def test_validate_failing_migration_is_the_only_result(
    fresh_db: FreshDatabase, tmp_path: Path
) -> None:
    folder = migrations_with(tmp_path, "select 1;\nselect * from public.nope;", "broken")

    outcome = validate(folder, db_url=fresh_db.dsn, apply=True)

    assert not outcome.passed
    [result] = outcome.results
    assert (result.name, result.passed) == ("migrations_apply", False)
    assert result.details[0].startswith(f"{folder}/29991231000000_broken.sql:2: 42P01")


def test_validate_unreachable_database_raises_setup_error() -> None:
    with pytest.raises(SetupError, match="cannot connect"):
        validate(db_url=f"postgresql://postgres:postgres@127.0.0.1:{free_port()}/postgres")


def test_validate_without_db_url_or_scratch_raises_setup_error_naming_the_scratch() -> None:
    with pytest.raises(SetupError, match=r"scratch=app\.local\.scratch\.fresh_database"):
        validate(MIGRATIONS)


def test_validate_scratch_that_cannot_start_raises_setup_error() -> None:
    @contextmanager
    def broken() -> Iterator[tuple[str, str]]:
        raise ScratchError("cannot start an embedded PostgreSQL: no binaries")
        yield ("", "")  # pragma: no cover

    with pytest.raises(SetupError, match="cannot start an embedded PostgreSQL: no binaries"):
        validate(MIGRATIONS, scratch=broken)


@pytest.mark.slow
def test_validate_with_the_local_scratch_applies_and_checks_then_removes_it() -> None:
    outcome = validate(MIGRATIONS, scratch=fresh_database, skip={"cross_user_rls"})

    assert outcome.passed
    assert outcome.database.startswith("a fresh embedded PostgreSQL")
    assert outcome.applied == sorted(p.stem for p in MIGRATIONS.glob("*.sql"))
