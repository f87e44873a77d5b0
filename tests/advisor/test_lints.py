"""Each catalogue check catches its deliberately bad migration, and only that one.

Every case is the project's migrations plus one extra file applied to a fresh database; the
expected set names every check that must fail, so a false positive elsewhere fails the test too.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from app.advisor import run_checks
from app.db.migrate import apply_migrations
from tests.advisor.cases import GRANTS, checks_after, failing, notes_table
from tests.support.database import MIGRATIONS, FreshDatabase


def test_project_migrations_pass_every_check(fresh_db: FreshDatabase) -> None:
    apply_migrations(fresh_db.dsn, MIGRATIONS)

    results = run_checks(fresh_db.dsn)

    assert [r.name for r in results if not r.passed or r.skipped] == []
    assert len(results) == 9


@pytest.mark.parametrize(
    "extra_sql",
    [
        pytest.param(notes_table(), id="notes-table-as-designed"),
        pytest.param(
            notes_table(
                policy="""create policy "notes: own" on public.notes for all to authenticated
                  using ((select auth.jwt() ->> 'sub')::uuid = user_id)
                  with check ((select auth.uid()) = user_id);"""
            ),
            id="wrapped-jwt-expression",
        ),
        pytest.param(
            notes_table(index="create index on public.notes (user_id, kind) include (body);"),
            id="fk-covered-by-leading-column-of-composite-index",
        ),
        pytest.param(
            notes_table() + "\ncreate view public.my_notes with (security_invoker = true)"
            " as select id, body from public.notes;"
            "\ngrant select on public.my_notes to authenticated;",
            id="security-invoker-view",
        ),
        pytest.param(
            notes_table()
            + "\ncreate function public.note_count() returns bigint language sql stable"
            " set search_path = '' as $$ select count(*) from public.notes $$;",
            id="pinned-search-path-function",
        ),
        pytest.param(
            notes_table()
            + """\ncreate policy "notes: service writes" on public.notes for insert
              to service_role with check (true);""",
            id="always-true-policy-for-service-role-only",
        ),
    ],
)
def test_checks_well_written_table_passes(
    fresh_db: FreshDatabase, tmp_path: Path, extra_sql: str
) -> None:
    assert failing(checks_after(fresh_db, tmp_path, extra_sql)) == set()


BAD_CASES = [
    pytest.param(
        notes_table(rls=False, policy="", grants=GRANTS),
        {"rls_enabled", "cross_user_rls"},
        "public.notes: RLS is disabled in an exposed schema",
        id="rls-off",
    ),
    pytest.param(
        notes_table(rls=False),
        {"rls_enabled", "cross_user_rls"},
        "public.notes: 1 policies but RLS is disabled",
        id="policy-without-rls",
    ),
    pytest.param(
        notes_table(policy=""),
        {"rls_enabled"},
        "public.notes: RLS is enabled but there is no policy",
        id="rls-without-policy",
    ),
    pytest.param(
        notes_table(
            policy="""create policy "notes: own" on public.notes for all to authenticated
              using (auth.uid() = user_id) with check (auth.uid() = user_id);"""
        ),
        {"auth_rls_initplan"},
        'public.notes: policy "notes: own" calls auth.uid()',
        id="bare-auth-uid",
    ),
    pytest.param(
        notes_table(
            policy="""create policy "notes: own" on public.notes for all to authenticated
              using ((select auth.uid()) = user_id and auth.uid() is not null)
              with check ((select auth.uid()) = user_id);"""
        ),
        {"auth_rls_initplan"},
        'public.notes: policy "notes: own"',
        id="one-wrapped-one-bare-call",
    ),
    pytest.param(
        notes_table(index=""),
        {"unindexed_foreign_keys"},
        "public.notes: foreign key notes_user_id_fkey (user_id) has no index",
        id="unindexed-foreign-key",
    ),
    pytest.param(
        notes_table(index="create index on public.notes (kind, user_id);"),
        {"unindexed_foreign_keys"},
        "public.notes: foreign key notes_user_id_fkey (user_id)",
        id="fk-only-second-column-of-index",
    ),
    pytest.param(
        notes_table() + "\ncreate function public.note_count() returns bigint language sql stable"
        " as $$ select count(*) from public.notes $$;",
        {"function_search_path_mutable"},
        "public.note_count(): search_path is not set",
        id="mutable-search-path",
    ),
    pytest.param(
        notes_table() + "\ncreate view public.all_notes as select id, body from public.notes;"
        "\ngrant select on public.all_notes to authenticated;",
        {"security_definer_view"},
        "public.all_notes: view runs with its owner's rights",
        id="security-definer-view",
    ),
    pytest.param(
        notes_table(grants=""),
        {"api_grants"},
        'public.notes: policy "notes: own" for ALL to authenticated, but authenticated holds no',
        id="policies-but-no-grant",
    ),
    pytest.param(
        notes_table(
            policy="""create policy "notes: read own" on public.notes for select
                to authenticated using ((select auth.uid()) = user_id);
              create policy "notes: update own" on public.notes for update
                to authenticated using ((select auth.uid()) = user_id);""",
            grants="grant select on public.notes to authenticated;",
        ),
        {"api_grants"},
        'policy "notes: update own" for UPDATE to authenticated, but authenticated holds no UPDATE',
        id="update-policy-without-update-grant",
    ),
    pytest.param(
        notes_table(grants=GRANTS + "\ngrant select, truncate on public.notes to anon;"),
        {"api_grants"},
        "public.notes: anon holds SELECT, TRUNCATE but no policy applies to anon",
        id="anon-granted-without-anon-policy",
    ),
    pytest.param(
        notes_table()
        + """\ncreate policy "notes: anyone adds" on public.notes for insert
          to authenticated with check (true);""",
        {"unsafe_policies", "cross_user_rls"},
        'policy "notes: anyone adds" for INSERT to authenticated allows any row (0024)',
        id="insert-with-check-true",
    ),
    pytest.param(
        notes_table()
        + """\ncreate policy "notes: admins read" on public.notes for select to authenticated
          using (((select auth.jwt()) -> 'user_metadata' ->> 'role') = 'admin');""",
        {"unsafe_policies"},
        'policy "notes: admins read" reads user_metadata',
        id="policy-reads-user-metadata",
    ),
]


_UNATTESTED_RECORDER = """
create function {schema}.record_usage(p_cost numeric) returns void
  language plpgsql security definer set search_path = '' as $$
begin
  insert into public.usage_logs (user_id, model, cost_usd) values (auth.uid(), 'm', p_cost);
end $$;
revoke all on function {schema}.record_usage(numeric) from public, anon;
"""
BAD_CASES += [
    pytest.param(
        "grant insert on public.usage_logs to authenticated;",
        {"billing_writes_attested"},
        "public.usage_logs: authenticated may INSERT",
        id="user-insert-on-usage",
    ),
    pytest.param(
        "grant insert (model) on public.usage_logs to authenticated;",
        {"billing_writes_attested"},
        "public.usage_logs: authenticated may INSERT",
        id="user-column-insert-on-usage",
    ),
    pytest.param(
        _UNATTESTED_RECORDER.format(schema="public")
        + "grant execute on function public.record_usage(numeric) to authenticated;",
        {"billing_writes_attested"},
        "public.record_usage(numeric): SECURITY DEFINER, callable by anon/authenticated, writes"
        " public.usage_logs with no attestation argument",
        id="unattested-definer-writes-usage",
    ),
    pytest.param(
        _UNATTESTED_RECORDER.format(schema="private")
        + """create function public.settle(p_cost numeric) returns void
          language sql security definer set search_path = ''
          as $$ select private.record_usage(p_cost) $$;
        revoke all on function public.settle(numeric) from public, anon;
        grant execute on function public.settle(numeric) to authenticated;""",
        {"billing_writes_attested"},
        "public.settle(numeric): SECURITY DEFINER, callable by anon/authenticated, writes"
        " public.usage_logs",
        id="unattested-definer-writes-usage-through-a-private-function",
    ),
]


@pytest.mark.parametrize(("extra_sql", "expected", "detail"), BAD_CASES)
def test_checks_bad_migration_fails_its_check(
    fresh_db: FreshDatabase, tmp_path: Path, extra_sql: str, expected: set[str], detail: str
) -> None:
    results = checks_after(fresh_db, tmp_path, extra_sql)

    assert failing(results) == expected
    first = sorted(expected - {"cross_user_rls"})[0]
    assert any(detail in line for line in results[first].details), results[first].details


def test_checks_exposed_schemas_come_from_pgrst_db_schemas(
    fresh_db: FreshDatabase, tmp_path: Path
) -> None:
    sql = "create schema api;\ncreate table api.things (id int primary key);"
    checks_after(fresh_db, tmp_path, sql)

    default = {r.name: r for r in run_checks(fresh_db.dsn)}
    exposed = {r.name: r for r in run_checks(fresh_db.dsn, schemas=["public", "api"])}

    assert default["rls_enabled"].passed
    assert not exposed["rls_enabled"].passed
    assert any(
        line.startswith("api.things: RLS is disabled") for line in exposed["rls_enabled"].details
    )


def test_run_checks_skip_leaves_the_check_out(fresh_db: FreshDatabase) -> None:
    names = [r.name for r in run_checks(fresh_db.dsn, skip={"cross_user_rls"})]

    assert "cross_user_rls" not in names
    assert len(names) == 8
    with pytest.raises(ValueError, match="no_such_check"):
        run_checks(fresh_db.dsn, skip={"no_such_check"})
