"""`scripts/cost_report.py`: files written, exit codes, help, progress on stderr."""

from __future__ import annotations

import csv
import importlib.util
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from types import ModuleType

import psycopg
import pytest

from app.local.postgres import free_port
from tests.analytics.seeding import SPEC, migrate_and_seed
from tests.support.database import ROOT, FreshDatabase

SINCE, UNTIL = SPEC.start.date().isoformat(), SPEC.end.date().isoformat()


@pytest.fixture(scope="module")
def cost_report() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "cost_report", ROOT / "scripts" / "cost_report.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def seeded(fresh_db: FreshDatabase) -> FreshDatabase:
    migrate_and_seed(fresh_db)
    return fresh_db


def test_cost_report_writes_csv_html_and_charts_and_exits_0(
    cost_report: ModuleType,
    seeded: FreshDatabase,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "report"

    code = cost_report.main([
        "--db-url", seeded.dsn, "--since", SINCE, "--until", UNTIL, "--out", str(out),
        "--format", "csv", "--format", "html", "--daily-budget", "1",
    ])  # fmt: skip

    assert code == 0
    captured = capsys.readouterr()
    assert "loading usage per user" not in captured.err  # no progress bar off a terminal
    assert str(out / "report.html") in captured.out
    for name in ("report.html", "users.csv", "top_users.png", "daily_cost_by_model.png"):
        assert (out / name).is_file(), name
    assert not (out / "report.md").exists()
    with psycopg.connect(seeded.dsn) as conn:
        row = conn.execute("select sum(cost_usd) from public.usage_logs").fetchone()
    with (out / "totals.csv").open() as f:
        totals = next(csv.DictReader(f))
    assert row is not None and Decimal(totals["cost_usd"]) == row[0]


def test_cost_report_for_one_user_in_markdown(
    cost_report: ModuleType, seeded: FreshDatabase, tmp_path: Path
) -> None:
    with psycopg.connect(seeded.dsn) as conn:
        row = conn.execute(
            "select l.user_id::text, u.email from public.usage_logs l"
            " join public.users u on u.id = l.user_id limit 1"
        ).fetchone()
    assert row is not None

    code = cost_report.main([
        "--db-url", seeded.dsn, "--since", SINCE, "--until", UNTIL, "--user", row[0],
        "--format", "md", "--out", str(tmp_path), "--quiet",
    ])  # fmt: skip

    assert code == 0
    page = (tmp_path / "report.md").read_text()
    assert f"UTC, {row[1]}" in page.splitlines()[2]  # the subtitle names the user by email
    assert row[0] not in page  # never a wrapped UUID
    assert "top_users.png" not in page and "cost_over_time.png" in page  # no one-bar chart


def test_cost_report_window_without_usage_exits_1_and_writes_nothing(
    cost_report: ModuleType, seeded: FreshDatabase, tmp_path: Path
) -> None:
    code = cost_report.main([
        "--db-url", seeded.dsn, "--since", "2001-01-01", "--until", "2001-02-01",
        "--out", str(tmp_path / "empty"), "--quiet",
    ])  # fmt: skip

    assert code == 1
    assert not (tmp_path / "empty").exists()


@pytest.mark.parametrize(
    "argv",
    [["--since", "yesterday"], ["--format", "pdf"], ["--user", "not-a-uuid"],
     ["--since", "2026-11-02", "--until", "2026-11-01"], ["--daily-budget", "-3"],
     ["--db-url", "postgresql://x", "--supabase-url", "http://y"]],
)  # fmt: skip
def test_cost_report_usage_errors_exit_2(
    cost_report: ModuleType, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cost_report.main(argv) == 2
    assert "usage:" in capsys.readouterr().err


def test_cost_report_unreachable_database_exits_3(
    cost_report: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dsn = f"postgresql://postgres:postgres@127.0.0.1:{free_port()}/postgres"

    code = cost_report.main(["--db-url", dsn, "--out", str(tmp_path), "--quiet"])

    assert code == 3
    assert "cannot reach the database" in capsys.readouterr().err


def test_cost_report_database_without_migrations_exits_4(
    cost_report: ModuleType, fresh_db: FreshDatabase, tmp_path: Path
) -> None:
    code = cost_report.main(["--db-url", fresh_db.dsn, "--out", str(tmp_path), "--quiet"])

    assert code == 4


def test_cost_report_help_shows_an_example_and_exits_0(
    cost_report: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cost_report.main(["--help"]) == 0
    text = capsys.readouterr().out
    assert "scripts/cost_report.py --since 2026-11-01 --until 2026-12-01" in text
    assert "Exit codes" in text


def test_cost_report_runs_as_a_script(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "cost_report.py"), "--help"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )

    assert result.returncode == 0 and "--supabase-url" in result.stdout


def test_cost_report_user_by_email_and_model_filter(
    cost_report: ModuleType, seeded: FreshDatabase, tmp_path: Path
) -> None:
    with psycopg.connect(seeded.dsn) as conn:
        row = conn.execute(
            "select u.email, sum(l.cost_usd)::text from public.usage_logs l"
            " join public.users u on u.id = l.user_id where l.model = 'gpt-4o'"
            " group by u.email order by 2 desc limit 1"
        ).fetchone()
    assert row is not None

    code = cost_report.main([
        "--db-url", seeded.dsn, "--since", SINCE, "--until", UNTIL, "--user", row[0].upper(),
        "--model", "gpt-4o", "--format", "csv", "--out", str(tmp_path), "--quiet",
    ])  # fmt: skip

    assert code == 0
    with (tmp_path / "totals.csv").open() as f:
        assert next(csv.DictReader(f))["cost_usd"] == row[1]
    with (tmp_path / "models.csv").open() as f:
        assert [r["model"] for r in csv.DictReader(f)] == ["gpt-4o"]


def test_cost_report_unknown_email_exits_2(
    cost_report: ModuleType, seeded: FreshDatabase, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    code = cost_report.main([
        "--db-url", seeded.dsn, "--user", "nobody@example.test", "--out", str(tmp_path), "--quiet",
    ])  # fmt: skip

    assert code == 2
    assert "no user with the email 'nobody@example.test'" in capsys.readouterr().err
