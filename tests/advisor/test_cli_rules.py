"""The advisor knows the Supabase CLI's rules, and each rule is true of the real CLI.

A bad file per rule fails `cli_rules.problems` (and `validate`, before anything is applied); the
same file under the real `supabase db push` either fails or leaves half of itself applied and
unrecorded — which is why the advisor refuses it.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from app.advisor import validate
from app.advisor.cli_rules import problems
from app.local.stack import LocalStack
from tests.support.database import MIGRATIONS, FreshDatabase, fresh_database
from tests.support.released import ROLLUP, shipped_rollup_text
from tests.support.supabase_cli import cli_url, project_copy, supabase_cli

PROBE = "create table public.cli_rule_probe (x int);\n"
FAIL_AFTER = "select 1 / 0;\n"
BAD = {
    "transaction_control": "begin;\ninsert into public.cli_rule_probe values (1);\ncommit;\n",
    "transaction_block_required": "lock table public.cli_rule_probe in share row exclusive mode;\n",
    "no_transaction_block": "create index concurrently cli_rule_x on public.cli_rule_probe (x);\n",
    "no_transaction_block/vacuum": "vacuum public.cli_rule_probe;\n",
}
# Under the real CLI: "refused" (the file fails, nothing of it stays) or "half" (it fails, but what
# came before the statement was committed and the file is not recorded as applied).
UNDER_CLI = {
    "transaction_control": "half",
    "transaction_block_required": "refused",
    "no_transaction_block": "half",
    "no_transaction_block/vacuum": "half",
}
GOOD = """-- begin; commit; lock table x; (comments are not statements)
create table public.cli_rule_ok (x int, note text default 'commit; vacuum; begin');
create index cli_rule_ok_x on public.cli_rule_ok (x);
do $$
begin
  lock table public.cli_rule_ok in share row exclusive mode;
end
$$;
create function public.cli_rule_ok_f() returns void language plpgsql as $f$
begin
  perform 1;
end
$f$;
"""


def _file(folder: Path, body: str, name: str = "20991231000100_probe.sql") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(body)
    return folder


@pytest.mark.parametrize("case", sorted(BAD))
def test_cli_rules_a_bad_file_is_named_with_its_rule_and_line(tmp_path: Path, case: str) -> None:
    folder = _file(tmp_path, PROBE + BAD[case] + FAIL_AFTER)

    found = problems(folder)

    assert found, case
    assert found[0].startswith(f"{folder}/20991231000100_probe.sql:2: {case.split('/')[0]}: ")


def test_cli_rules_a_misnamed_file_is_named_because_both_appliers_skip_it(tmp_path: Path) -> None:
    folder = _file(tmp_path, PROBE, name="add_probe.sql")

    assert problems(folder) == [
        f"{folder}/add_probe.sql: file_name: both appliers skip it; name it"
        " <14-digit timestamp>_<name>.sql"
    ]


def test_cli_rules_the_shipped_rollup_file_breaks_the_lock_rule(tmp_path: Path) -> None:
    folder = _file(tmp_path, shipped_rollup_text(), name=ROLLUP.name)

    [found] = problems(folder)

    assert ": transaction_block_required: lock table public.usage_logs in share row" in found


def test_cli_rules_a_lock_in_a_do_block_and_words_in_strings_and_comments_pass(
    tmp_path: Path,
) -> None:
    assert problems(_file(tmp_path, GOOD)) == []


def test_cli_rules_every_migration_of_the_repo_follows_them() -> None:
    assert problems(MIGRATIONS) == []


def test_validate_refuses_a_file_breaking_a_cli_rule_before_applying_anything(
    fresh_db: FreshDatabase, tmp_path: Path
) -> None:
    folder = _file(tmp_path, PROBE + BAD["transaction_block_required"])

    outcome = validate(folder, db_url=fresh_db.dsn, apply=True)

    [result] = outcome.results
    assert (result.name, result.passed, outcome.applied) == ("migrations_apply", False, [])
    assert ": transaction_block_required: lock table" in result.details[0]
    assert result.details[-1] == "the other checks did not run"


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(BAD))
def test_cli_rules_hold_for_the_real_cli(
    local_stack: LocalStack, tmp_path: Path, case: str
) -> None:
    cli = supabase_cli()
    work = project_copy(
        tmp_path,
        [
            _file(tmp_path / "m", PROBE + BAD[case] + FAIL_AFTER).joinpath(
                "20991231000100_probe.sql"
            )
        ],
    )
    with fresh_database(local_stack) as db:
        done = cli.run(
            "db", "push", "--db-url", cli_url(db.dsn), "--yes", workdir=work, check=False
        )
        with psycopg.connect(db.dsn) as conn:
            left = conn.execute(
                "select to_regclass('public.cli_rule_probe') is not null"
            ).fetchone()
            recorded = conn.execute(
                "select count(*) from supabase_migrations.schema_migrations"
            ).fetchone()
    assert done.returncode != 0 and recorded == (0,), done.stderr
    assert left == ((UNDER_CLI[case] == "half"),), done.stderr


@pytest.mark.slow
def test_cli_rules_the_good_file_applies_and_is_recorded_by_the_real_cli(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    cli = supabase_cli()
    work = project_copy(tmp_path, [_file(tmp_path / "m", GOOD) / "20991231000100_probe.sql"])
    with fresh_database(local_stack) as db:
        cli.run("db", "push", "--db-url", cli_url(db.dsn), "--yes", workdir=work)
        with psycopg.connect(db.dsn) as conn:
            recorded = conn.execute(
                "select version from supabase_migrations.schema_migrations"
            ).fetchall()
    assert recorded == [("20991231000100",)]
