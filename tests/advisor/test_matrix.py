"""The cross-user RLS matrix: user B against user A's rows, and anon, as the real API roles."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from app.advisor.matrix import check_cross_user_rls
from app.db.migrate import apply_migrations
from tests.advisor.cases import (
    GRANTS,
    checks_after,
    failing,
    migrations_with,
    notes_table,
    table_rows,
)
from tests.support.database import MIGRATIONS, FreshDatabase

HOLES = [
    pytest.param(
        """create policy "notes: read all" on public.notes for select
          to authenticated using (true);""",
        "public.notes: user B reads 1 of user A's rows",
        id="select-using-true",
    ),
    pytest.param(
        """create policy "notes: signed-in delete" on public.notes for delete
          to authenticated using ((select auth.role()) = 'authenticated');""",
        "public.notes: user B deletes 1 of user A's rows",
        id="delete-without-owner-filter",
    ),
    pytest.param(
        """create policy "notes: signed-in edit" on public.notes for update
          to authenticated using ((select auth.uid()) is not null);""",
        "public.notes: user B updates 1 of user A's rows",
        id="update-without-owner-filter",
    ),
    pytest.param(
        """create policy "notes: signed-in add" on public.notes for insert
          to authenticated with check ((select auth.uid()) is not null);""",
        "public.notes: user B inserts a row with user A's user_id",
        id="insert-without-owner-check",
    ),
    pytest.param(
        """create policy "notes: public read" on public.notes for select to anon using (true);
        grant select on public.notes to anon;""",
        "public.notes: anon reads 1 rows",
        id="anon-reads",
    ),
]


@pytest.mark.parametrize(("hole", "finding"), HOLES)
def test_cross_user_rls_open_table_fails_with_the_hole(
    fresh_db: FreshDatabase, tmp_path: Path, hole: str, finding: str
) -> None:
    results = checks_after(fresh_db, tmp_path, notes_table() + "\n" + hole)

    assert failing(results) == {"cross_user_rls"}
    assert finding in results["cross_user_rls"].details


def _matrix(dsn: str) -> tuple[bool, bool, list[str]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        result = check_cross_user_rls(conn)
    return result.passed, result.skipped, result.details


def test_cross_user_rls_project_schema_probes_every_user_table(fresh_db: FreshDatabase) -> None:
    apply_migrations(fresh_db.dsn, MIGRATIONS)

    passed, skipped, details = _matrix(fresh_db.dsn)

    assert (passed, skipped) == (True, False)
    for table in ("conversations", "messages", "usage_logs", "users"):
        assert f"public.{table}" in details[0]


def test_cross_user_rls_rolls_back_its_users_and_rows(fresh_db: FreshDatabase) -> None:
    apply_migrations(fresh_db.dsn, MIGRATIONS)

    _matrix(fresh_db.dsn)

    for schema, table in [("auth", "users"), ("public", "users"), ("public", "messages")]:
        assert table_rows(fresh_db.dsn, schema, table) == 0


GENERIC_TABLE = """
create type public.mood as enum ('calm', 'busy');
create table public.tags (id int primary key, label text not null unique);
alter table public.tags enable row level security;
create policy "tags: read" on public.tags for select to authenticated using (true);
grant select on public.tags to authenticated;
create table public.entries (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references auth.users (id),
  tag_id int not null references public.tags (id),
  mood public.mood not null,
  status text not null check (status in ('draft', 'final')),
  score numeric(4, 1) not null check (score > 0),
  happened_on date not null,
  meta jsonb not null
);
create index on public.entries (user_id);
create index on public.entries (tag_id);
alter table public.entries enable row level security;
grant select, insert, update, delete on public.entries to authenticated;
"""


@pytest.mark.parametrize(
    ("read_policy", "passes"),
    [
        pytest.param("(select auth.uid()) = user_id", True, id="own-rows"),
        pytest.param("true", False, id="everyone"),
    ],
)
def test_cross_user_rls_builds_rows_for_enums_checks_and_lookup_tables(
    fresh_db: FreshDatabase, tmp_path: Path, read_policy: str, passes: bool
) -> None:
    sql = GENERIC_TABLE + (
        f'create policy "entries: read" on public.entries for select to authenticated'
        f" using ({read_policy});"
    )
    apply_migrations(fresh_db.dsn, migrations_with(tmp_path, sql))

    passed, _, details = _matrix(fresh_db.dsn)

    assert passed is passes
    if passes:
        assert "public.entries" in details[0]
    else:
        assert "public.entries: user B reads 1 of user A's rows" in details


def test_cross_user_rls_trigger_that_reowns_inserts_is_not_a_hole(
    fresh_db: FreshDatabase, tmp_path: Path
) -> None:
    sql = notes_table(
        policy="""create policy "notes: own" on public.notes for select to authenticated
            using ((select auth.uid()) = user_id);
          create policy "notes: signed-in add" on public.notes for insert to authenticated
            with check ((select auth.uid()) is not null);
          create function public.notes_owner() returns trigger language plpgsql
            set search_path = '' as $$
          begin new.user_id := auth.uid(); return new; end $$;
          create trigger notes_owner before insert on public.notes
            for each row execute function public.notes_owner();""",
        grants=GRANTS,
    )
    results = checks_after(fresh_db, tmp_path, sql)

    assert failing(results) == set()


def test_cross_user_rls_insert_stopped_only_by_a_constraint_fails(
    fresh_db: FreshDatabase, tmp_path: Path
) -> None:
    sql = """
    create table public.profiles (
      id uuid primary key references auth.users (id) on delete cascade,
      bio text
    );
    alter table public.profiles enable row level security;
    create policy "profiles: own" on public.profiles for select to authenticated
      using ((select auth.uid()) = id);
    create policy "profiles: add" on public.profiles for insert to authenticated
      with check ((select auth.uid()) is not null);
    grant select, insert on public.profiles to authenticated;
    """
    results = checks_after(fresh_db, tmp_path, sql)

    assert failing(results) == {"cross_user_rls"}
    assert any(
        "public.profiles: user B's insert with user A's id passes RLS" in line
        for line in results["cross_user_rls"].details
    )


def test_cross_user_rls_table_it_cannot_fill_is_reported_not_failed(
    fresh_db: FreshDatabase, tmp_path: Path
) -> None:
    sql = notes_table().replace("kind text not null", "spot point not null,\n  kind text not null")
    results = checks_after(fresh_db, tmp_path, sql)

    matrix = results["cross_user_rls"]
    assert matrix.passed
    assert any(
        line.startswith("not probed: public.notes: no probe value for required column spot")
        for line in matrix.details
    )


def test_cross_user_rls_without_privileges_is_skipped(fresh_db: FreshDatabase) -> None:
    apply_migrations(fresh_db.dsn, MIGRATIONS)
    authenticator = fresh_db.dsn.replace("//postgres:", "//authenticator:")

    passed, skipped, details = _matrix(authenticator)

    assert (passed, skipped) == (True, True)
    assert details[0].startswith("skipped: needs privileges: authenticator cannot insert")


def test_cross_user_rls_broken_signup_trigger_fails_the_check(
    fresh_db: FreshDatabase, tmp_path: Path
) -> None:
    sql = """
    create function public.refuse_signups() returns trigger language plpgsql
      set search_path = '' as $$ begin raise exception 'signups are closed'; end $$;
    create trigger refuse_signups after insert on auth.users
      for each row execute function public.refuse_signups();
    """
    results = checks_after(fresh_db, tmp_path, sql)

    assert failing(results) == {"cross_user_rls"}
    assert (
        results["cross_user_rls"]
        .details[0]
        .startswith(
            "creating a user in auth.users fails, so would every signup: P0001: signups are closed"
        )
    )
