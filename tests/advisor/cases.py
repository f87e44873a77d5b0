"""Building blocks for the advisor tests: the project's migrations plus one extra file.

`notes_table()` is a user-owned table written the way docs/design.md §7 asks (RLS,
`(select auth.uid())`, indexed FK, explicit grants); each bad case changes one thing about it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg
from psycopg import sql

from app.advisor import CheckResult, run_checks
from app.db.migrate import apply_migrations
from tests.support.database import MIGRATIONS, FreshDatabase

OWN_POLICY = """create policy "notes: own" on public.notes for all to authenticated
  using ((select auth.uid()) = user_id) with check ((select auth.uid()) = user_id);"""
GRANTS = "grant select, insert, update, delete on public.notes to authenticated;"
INDEX = "create index notes_user_id_idx on public.notes (user_id);"


def notes_table(
    *, rls: bool = True, policy: str = OWN_POLICY, grants: str = GRANTS, index: str = INDEX
) -> str:
    return "\n".join(
        [
            "create table public.notes (",
            "  id bigint generated always as identity primary key,",
            "  user_id uuid not null default auth.uid()"
            " references public.users (id) on delete cascade,",
            "  body text not null check (char_length(body) <= 1000),",
            "  kind text not null check (kind in ('todo', 'idea'))",
            ");",
            index,
            "alter table public.notes enable row level security;" if rls else "",
            policy,
            grants,
        ]
    )


def migrations_with(folder: Path, extra_sql: str, name: str = "extra") -> Path:
    """A copy of the project's migrations plus `extra_sql` as the last file."""
    target = folder / "migrations"
    shutil.copytree(MIGRATIONS, target)
    (target / f"29991231000000_{name}.sql").write_text(extra_sql + "\n")
    return target


def checks_after(fresh_db: FreshDatabase, folder: Path, extra_sql: str) -> dict[str, CheckResult]:
    """Apply the project's migrations + `extra_sql` to `fresh_db`, run every check, by name."""
    apply_migrations(fresh_db.dsn, migrations_with(folder, extra_sql))
    return {r.name: r for r in run_checks(fresh_db.dsn)}


def failing(results: dict[str, CheckResult]) -> set[str]:
    return {name for name, r in results.items() if not r.passed}


def table_rows(dsn: str, schema: str, table: str) -> int:
    with psycopg.connect(dsn) as conn:
        query = sql.SQL("select count(*) from {}").format(sql.Identifier(schema, table))
        row = conn.execute(query).fetchone()
    return int(row[0]) if row else 0
