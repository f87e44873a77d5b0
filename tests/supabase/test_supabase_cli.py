"""The real Supabase CLI (pinned in package.json) applies, lists and lints our migrations.

Each test gets a fresh database shaped like a Supabase project (roles, `auth`, `extensions`), or,
for the dry run, the session's database that `chat-stream migrate` built. No CLI run may print
a warning: the CLI reads `supabase/config.toml` on every command, so a `WARN` line is a config
problem.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from app.cli import main as chat_stream
from app.config import get_settings
from app.db.migrate import apply_migrations, discover
from app.local.stack import LocalStack
from app.ops.check import Result, collect
from tests.support.data_api import data_api, service_settings
from tests.support.database import MIGRATIONS, FreshDatabase, fresh_database
from tests.support.supabase_cli import cli_url, project_copy, supabase_cli

pytestmark = pytest.mark.slow

KEY = "a-billing-attestation-key-of-32-bytes-or-more"


def _quiet(done: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    warnings = [
        line for line in (done.stdout + done.stderr).splitlines() if re.match(r"\s*WARN", line)
    ]
    assert not warnings, f"the CLI warned: {warnings}"
    return done


def _listed(out: str) -> dict[str, str]:
    """`supabase migration list`: local version → remote version ('' when not applied)."""
    rows: dict[str, str] = {}
    for line in out.splitlines():
        cells = [c.strip().strip("`") for c in line.split("|")]
        if len(cells) >= 2 and cells[0].isdigit():
            rows[cells[0]] = cells[1]
    return rows


def _checks(results: list[Result]) -> dict[str, tuple[str, str]]:
    return {r.name: (r.status, r.detail) for r in results}


def test_db_push_applies_every_migration_then_migrate_finds_nothing_and_check_passes(
    local_stack: LocalStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli = supabase_cli()
    work = project_copy(tmp_path / "project")
    versions = [m.version for m in discover(MIGRATIONS)]
    with fresh_database(local_stack) as db:
        pushed = _quiet(
            cli.run(
                "db", "push", "--db-url", cli_url(db.dsn), "--include-all", "--yes", workdir=work
            )
        )
        for migration in discover(MIGRATIONS):
            assert f"Applying migration {migration.path.name}..." in pushed.stderr
        listed = _listed(
            _quiet(cli.run("migration", "list", "--db-url", cli_url(db.dsn), workdir=work)).stdout
        )
        assert listed == {v: v for v in versions}
        with psycopg.connect(db.dsn) as conn:
            history = conn.execute(
                "select version, name, cardinality(statements) > 0"
                " from supabase_migrations.schema_migrations order by version"
            ).fetchall()
        assert history == [(m.version, m.name, True) for m in discover(MIGRATIONS)]

        assert apply_migrations(db.dsn, MIGRATIONS) == []  # what `chat-stream migrate` runs

        with data_api(local_stack, db) as ctx:
            settings = service_settings(ctx, KEY, tmp_path / "outbox")
            before = _checks(list(collect(settings, db_url=db.dsn)))
            monkeypatch.chdir(tmp_path)  # no developer .env
            monkeypatch.setenv("BILLING_ATTESTATION_KEY", KEY)
            get_settings.cache_clear()  # the CLI reads this environment, not a cached one
            try:
                assert chat_stream(["keys", "provision", "--db-url", db.dsn]) == 0
            finally:
                get_settings.cache_clear()
            after = _checks(list(collect(settings, db_url=db.dsn)))

    assert before["attestation key"] == (
        "fail",
        "the database does not hold BILLING_ATTESTATION_KEY (neither private.attestation_keys nor "
        "Supabase Vault): every turn would be refused; run `chat-stream keys provision --db-url "
        "'<session pooler DSN>'` (or `supabase db push` with BILLING_ATTESTATION_KEY set, which "
        "stores it in Vault as billing_attestation_key)",
    )
    assert {name: status for name, (status, _) in after.items()} == {
        "signing keys": "ok",
        "publishable key": "ok",
        "secret key": "ok",
        "issuer": "ok",
        "migrations": "ok",
        "rpc chat_begin": "ok",
        "rpc chat_finish": "ok",
        "rpc chat_renew": "ok",
        "attestation key": "ok",
        "outbox": "ok",
        "provider": "skip",
    }
    assert after["attestation key"][1] == (
        "the database accepts BILLING_ATTESTATION_KEY (held in private.attestation_keys)"
    )


def test_db_push_dry_run_on_a_database_chat_stream_migrated_finds_nothing(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    cli = supabase_cli()
    work = project_copy(tmp_path / "project")
    assert apply_migrations(local_stack.ctx.db_url, MIGRATIONS) == []  # the session database

    done = _quiet(
        cli.run(
            "db", "push", "--dry-run", "--db-url", cli_url(local_stack.ctx.db_url), workdir=work
        )
    )

    assert "Remote database is up to date." in done.stdout
    assert "Would push" not in done.stderr


def test_db_lint_reports_nothing_at_warning_level_for_public_and_private(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    """plpgsql_check over every PL/pgSQL function (the CLI skips trigger functions)."""
    cli = supabase_cli()
    work = project_copy(tmp_path / "project")
    with fresh_database(local_stack) as db:
        _enable_plpgsql_check(db)
        apply_migrations(db.dsn, MIGRATIONS)
        done = cli.run(
            "db",
            "lint",
            "--db-url",
            cli_url(db.dsn),
            "--schema",
            "public,private",
            "--level",
            "warning",
            "--fail-on",
            "warning",
            workdir=work,
        )
    _quiet(done)
    assert "Linting schema: public" in done.stderr and "Linting schema: private" in done.stderr
    assert "No schema errors found" in done.stderr, done.stdout
    assert done.stdout.strip() == ""


def _enable_plpgsql_check(db: FreshDatabase) -> None:
    """As on a hosted project: plpgsql_check available in `extensions`, which is on postgres's
    search_path (the CLI steps down to postgres and calls plpgsql_check_function unqualified)."""
    with psycopg.connect(db.superuser_dsn, autocommit=True) as conn:
        available = conn.execute(
            "select 1 from pg_available_extensions where name = 'plpgsql_check'"
        ).fetchone()
        if not available:
            reason = "plpgsql_check is not installed: apt-get install postgresql-15-plpgsql-check"
            if os.environ.get("CI") == "true":
                pytest.fail(reason, pytrace=False)
            pytest.skip(reason)
        conn.execute("create extension plpgsql_check with schema extensions")
        conn.execute(
            sql.SQL("alter role postgres in database {} set search_path = {}").format(
                sql.Identifier(db.name), sql.SQL('"$user", public, extensions')
            )
        )
