"""Apply `supabase/migrations/*.sql` the way the Supabase CLI does, against any PostgreSQL.

Each file runs in one transaction, statement by statement, and is recorded in
`supabase_migrations.schema_migrations(version, name, statements)`; applied versions are skipped.
A failure names the file, the line and the SQL error, and leaves nothing of that file behind.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from app.db.sqlsplit import Statement, split_statements

logger = logging.getLogger(__name__)


def default_migrations_dir() -> Path:
    """The repo's `supabase/migrations` (a source checkout), else the one in the working dir
    (an installed package, as in the container)."""
    beside = Path(__file__).resolve().parents[2] / "supabase" / "migrations"
    return beside if beside.is_dir() else Path.cwd() / "supabase" / "migrations"


MIGRATION_NAME = re.compile(r"^([0-9]+)_(.*)\.sql$")

_HISTORY_DDL = """
create schema if not exists supabase_migrations;
create table if not exists supabase_migrations.schema_migrations (
  version text not null primary key,
  statements text[],
  name text
);
"""


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    path: Path


class MigrationError(RuntimeError):
    """A migration failed; nothing of its file was kept."""

    def __init__(self, path: Path, line: int, error: str) -> None:
        self.path, self.line, self.error = path, line, error
        super().__init__(f"{path.name}:{line}: {error}")


def discover(migrations_dir: Path) -> list[Migration]:
    """Migration files in version order; other files are skipped with a warning, like the CLI."""
    found: list[Migration] = []
    for path in sorted(Path(migrations_dir).glob("*.sql")):
        m = MIGRATION_NAME.match(path.name)
        if not m:
            logger.warning('skipping %s: file name must match pattern "<timestamp>_name.sql"', path)
            continue
        found.append(Migration(m.group(1), m.group(2), path))
    return sorted(found, key=lambda mig: mig.version)


def history_exists(conn: psycopg.Connection) -> bool:
    row = conn.execute(
        "select to_regclass('supabase_migrations.schema_migrations') is not null"
    ).fetchone()
    return bool(row and row[0])


def applied_versions(conn: psycopg.Connection) -> set[str]:
    if not history_exists(conn):
        return set()
    rows = conn.execute("select version from supabase_migrations.schema_migrations").fetchall()
    return {r[0] for r in rows}


def apply_migrations(dsn: str, migrations_dir: Path) -> list[Migration]:
    """Apply pending migrations in order; return the ones applied this call."""
    applied: list[Migration] = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(_HISTORY_DDL)
        done = applied_versions(conn)
        for migration in discover(migrations_dir):
            if migration.version in done:
                continue
            _apply_one(conn, migration)
            applied.append(migration)
            logger.info("applied migration %s_%s", migration.version, migration.name)
    return applied


def _apply_one(conn: psycopg.Connection, migration: Migration) -> None:
    script = migration.path.read_text()
    statements = split_statements(script)
    try:
        with conn.transaction():
            for stmt in statements:
                try:
                    conn.execute(stmt.sql.encode())  # bytes: no %-placeholder interpretation
                except psycopg.Error as exc:
                    raise MigrationError(
                        migration.path, _error_line(stmt, exc), _describe(exc)
                    ) from exc
            conn.execute(
                sql.SQL(
                    "insert into supabase_migrations.schema_migrations (version, name, statements)"
                    " values ({}, {}, {})"
                ).format(
                    sql.Literal(migration.version),
                    sql.Literal(migration.name),
                    sql.Literal([s.sql for s in statements]),
                )
            )
    except MigrationError:
        raise
    except psycopg.Error as exc:  # the COMMIT itself (deferred constraints) failed
        raise MigrationError(migration.path, 1, _describe(exc)) from exc


def _error_line(stmt: Statement, exc: psycopg.Error) -> int:
    position = exc.diag.statement_position
    if position and position.isdigit():
        return stmt.line_at(int(position))
    return stmt.code_line


def _describe(exc: psycopg.Error) -> str:
    diag = exc.diag
    parts = [f"{diag.sqlstate or 'ERROR'}: {diag.message_primary or exc}"]
    if diag.message_detail:
        parts.append(f"DETAIL: {diag.message_detail}")
    if diag.message_hint:
        parts.append(f"HINT: {diag.message_hint}")
    if diag.context:
        parts.append(f"CONTEXT: {diag.context.strip()}")
    return "\n".join(parts)
