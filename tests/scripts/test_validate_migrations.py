"""`scripts/validate_migrations.py`: exit codes, table and JSON output, the fresh default."""

from __future__ import annotations

import glob
import importlib.util
import json
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from app.local.postgres import free_port
from tests.advisor.cases import migrations_with, notes_table
from tests.support.database import MIGRATIONS, ROOT, FreshDatabase

BARE_UID = notes_table(
    policy="""create policy "notes: own" on public.notes for all to authenticated
      using (auth.uid() = user_id) with check (auth.uid() = user_id);"""
)


def _load_main() -> Callable[[list[str]], int]:
    spec = importlib.util.spec_from_file_location(
        "validate_migrations", ROOT / "scripts" / "validate_migrations.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main  # type: ignore[no-any-return]


main = _load_main()


def test_validate_migrations_clean_migrations_exit_0_with_every_check(
    fresh_db: FreshDatabase, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--migrations", str(MIGRATIONS), "--db-url", fresh_db.dsn, "--apply"])

    out = capsys.readouterr().out
    assert code == 0, out
    for name in ("migrations_apply", "rls_enabled", "api_grants", "cross_user_rls"):
        assert f"\n{name} " in out
    assert "FAIL" not in out
    assert "postgres@127.0.0.1" in out and "postgres:postgres" not in out  # no password shown


def test_validate_migrations_bad_policy_exits_1_and_names_the_check(
    fresh_db: FreshDatabase, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = migrations_with(tmp_path, BARE_UID)

    code = main(["--migrations", str(folder), "--db-url", fresh_db.dsn, "--apply"])

    out = capsys.readouterr().out
    assert code == 1
    failed = [line for line in out.splitlines() if "  FAIL  " in line]
    assert [line.split()[0] for line in failed] == ["auth_rls_initplan"]
    assert 'public.notes: policy "notes: own" calls auth.uid()' in failed[0]


def test_validate_migrations_sql_error_exits_1_with_file_and_line(
    fresh_db: FreshDatabase, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = migrations_with(tmp_path, "-- one\n\ncreate tabel public.oops (id int);", "broken")

    code = main(["--migrations", str(folder), "--db-url", fresh_db.dsn, "--apply"])

    out = capsys.readouterr().out
    assert code == 1
    assert "migrations_apply" in out and "FAIL" in out
    assert "29991231000000_broken.sql:3: 42601" in out
    assert "rls_enabled" not in out  # nothing else runs on a half-built schema


def test_validate_migrations_json_reports_each_check(
    fresh_db: FreshDatabase, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = migrations_with(tmp_path, BARE_UID)

    code = main(
        ["--migrations", str(folder), "--db-url", fresh_db.dsn, "--apply", "--format", "json"]
    )

    doc = json.loads(capsys.readouterr().out)
    assert code == 1
    assert doc["passed"] is False
    assert doc["applied"][-1] == "29991231000000_extra"
    statuses = {c["name"]: c["status"] for c in doc["checks"]}
    assert statuses["auth_rls_initplan"] == "FAIL"
    assert statuses["cross_user_rls"] == "PASS"


def test_validate_migrations_without_apply_only_checks(
    fresh_db: FreshDatabase, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["--db-url", fresh_db.dsn, "--migrations", "/nonexistent", "--skip", "cross_user_rls"]
    )

    out = capsys.readouterr().out
    assert code == 0
    assert "migrations_apply" not in out and "cross_user_rls" not in out


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["--apply"], id="apply-without-db-url"),
        pytest.param(["--format", "xml"], id="unknown-format"),
        pytest.param(["--skip", "no_such_check"], id="unknown-check"),
        pytest.param(["--migrations", "/nonexistent"], id="missing-migrations-folder"),
    ],
)
def test_validate_migrations_usage_error_exits_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert "error" in capsys.readouterr().err


def test_validate_migrations_help_shows_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "python scripts/validate_migrations.py --db-url" in out
    assert "cross_user_rls" in out


def test_validate_migrations_unreachable_database_exits_3(
    capsys: pytest.CaptureFixture[str],
) -> None:
    dsn = f"postgresql://postgres:secret@127.0.0.1:{free_port()}/postgres"

    assert main(["--db-url", dsn]) == 3
    err = capsys.readouterr().err
    assert "cannot connect to postgres@127.0.0.1" in err and "secret" not in err


@pytest.mark.slow
@pytest.mark.parametrize(("extra_sql", "expected"), [("", 0), (BARE_UID, 1)], ids=["clean", "bad"])
def test_validate_migrations_default_path_uses_a_fresh_cluster_and_removes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra_sql: str, expected: int
) -> None:
    pattern = str(Path(tempfile.gettempdir()) / "validate-migrations-*")
    before = set(glob.glob(pattern))
    folder = migrations_with(tmp_path, extra_sql)

    code = main(["--migrations", str(folder)])

    out = capsys.readouterr().out
    assert code == expected, out
    assert "checked a fresh embedded PostgreSQL" in out
    assert ("auth_rls_initplan             WARN   FAIL" in out) is bool(expected)
    assert set(glob.glob(pattern)) <= before  # its data dir is gone, so is its server
