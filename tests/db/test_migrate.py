"""The migration runner: order, idempotence, history, and failures that leave nothing behind."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from app.db.migrate import MigrationError, apply_migrations, discover
from tests.support.database import MIGRATIONS, FreshDatabase


def _tables(dsn: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "select tablename from pg_tables where schemaname = 'public'"
        ).fetchall()
    return {r[0] for r in rows}


def test_apply_migrations_twice_applies_everything_then_nothing(fresh_db: FreshDatabase) -> None:
    first = apply_migrations(fresh_db.dsn, MIGRATIONS)
    second = apply_migrations(fresh_db.dsn, MIGRATIONS)

    assert [m.version for m in first] == [m.version for m in discover(MIGRATIONS)]
    assert second == []
    assert {"users", "conversations", "messages", "usage_logs"} <= _tables(fresh_db.dsn)
    with psycopg.connect(fresh_db.dsn) as conn:
        rows = conn.execute(
            "select version, name, cardinality(statements)"
            " from supabase_migrations.schema_migrations order by version"
        ).fetchall()
    assert [r[0] for r in rows] == [m.version for m in first]
    assert all(r[2] > 0 for r in rows)


def test_migrations_run_as_a_non_superuser(fresh_db: FreshDatabase) -> None:
    with psycopg.connect(fresh_db.dsn) as conn:
        row = conn.execute(
            "select rolsuper, rolbypassrls from pg_roles where rolname = current_user"
        ).fetchone()
    assert row == (False, True)  # Supabase's demoted `postgres`
    assert apply_migrations(fresh_db.dsn, MIGRATIONS)


def _write(folder: Path, name: str, text: str) -> None:
    (folder / name).write_text(text)


def test_broken_migration_names_file_and_line_and_rolls_back(
    fresh_db: FreshDatabase, tmp_path: Path
) -> None:
    _write(
        tmp_path, "20260101000000_ok.sql", "create table public.ok_table (id int primary key);\n"
    )
    _write(
        tmp_path,
        "20260102000000_broken.sql",
        "-- a comment\ncreate table public.half_done (id int);\n\n"
        "insert into public.half_done values (1);\n"
        "insert into public.half_done values ('not a number');\n",
    )
    _write(tmp_path, "20260103000000_after.sql", "create table public.never (id int);\n")

    with pytest.raises(MigrationError) as info:
        apply_migrations(fresh_db.dsn, tmp_path)

    err = info.value
    assert err.path.name == "20260102000000_broken.sql"
    assert err.line == 5
    assert "22P02" in err.error and "not a number" in err.error
    assert "20260102000000_broken.sql:5" in str(err)
    tables = _tables(fresh_db.dsn)
    assert "ok_table" in tables
    assert "half_done" not in tables and "never" not in tables
    with psycopg.connect(fresh_db.dsn) as conn:
        versions = [
            r[0] for r in conn.execute("select version from supabase_migrations.schema_migrations")
        ]
    assert versions == ["20260101000000"]


def test_syntax_error_line_comes_from_the_error_position(
    fresh_db: FreshDatabase, tmp_path: Path
) -> None:
    _write(
        tmp_path,
        "20260101000000_typo.sql",
        "create table public.a (id int);\ncreate table public.b (\n  id int,\n  nme txet\n);\n",
    )
    with pytest.raises(MigrationError) as info:
        apply_migrations(fresh_db.dsn, tmp_path)
    assert info.value.line == 4
    assert "txet" in info.value.error
    assert "a" not in _tables(fresh_db.dsn)


def test_superuser_only_statement_fails_like_on_supabase(
    fresh_db: FreshDatabase, tmp_path: Path
) -> None:
    _write(tmp_path, "20260101000000_su.sql", "create role sneaky superuser;\n")
    with pytest.raises(MigrationError) as info:
        apply_migrations(fresh_db.dsn, tmp_path)
    assert "42501" in info.value.error


def test_discover_skips_files_not_named_like_the_cli_expects(tmp_path: Path) -> None:
    _write(tmp_path, "20260102000000_b.sql", "select 1;")
    _write(tmp_path, "20260101000000_a.sql", "select 1;")
    _write(tmp_path, "notes.sql", "select 1;")
    assert [m.name for m in discover(tmp_path)] == ["a", "b"]
