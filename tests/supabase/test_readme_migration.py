"""README's "1. The database" steps, run as written against a Supabase-shaped database.

The test takes the shell block under the `migration steps` marker and runs it with bash from the
repo root. Two kinds of line are not run but checked: `npm ci` (the install `make tools` already
ran: the Makefile must run that same command) and `export NAME=<placeholder>`, whose values the
test supplies (this database's URL, a key). Everything else runs verbatim, in order, and must
succeed; the Vault stand-in (tests/support/vault.sql) plays the project's Vault.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import psycopg
import pytest

from app.local.stack import LocalStack
from tests.support.data_api import data_api, service_env
from tests.support.database import ROOT, fresh_database
from tests.support.supabase_cli import CLI, cli_url, supabase_cli

pytestmark = pytest.mark.slow

MARKER = "<!-- migration steps:"
KEY = "a-billing-attestation-key-kept-in-vault-32+"
VAULT_SQL = Path(__file__).resolve().parents[1] / "support" / "vault.sql"


def readme_steps() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = text[text.index(MARKER) :]
    body = block[block.index("```sh\n") + len("```sh\n") :]
    return [line for line in body[: body.index("```")].splitlines() if line.strip()]


def test_readme_migration_steps_are_install_exports_then_commands() -> None:
    steps = readme_steps()
    assert steps[0] == "npm ci" and "npm ci" in (ROOT / "Makefile").read_text()
    exports = [re.match(r"export (\w+)=", s) for s in steps[1:3]]
    assert [m.group(1) for m in exports if m] == ["DATABASE_URL", "BILLING_ATTESTATION_KEY"]
    assert [s.split()[:3] for s in steps[3:]] == [
        ["npx", "supabase", "db"],
        ["npx", "supabase", "migration"],
        ["chat-stream", "check", "--db-url"],
    ]


def test_readme_migration_steps_run_as_written_and_check_finds_the_key_in_vault(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    cli = supabase_cli()
    commands = [s for s in readme_steps() if s != "npm ci" and not s.startswith("export ")]
    with fresh_database(local_stack) as db:
        with psycopg.connect(db.superuser_dsn, autocommit=True) as conn:
            conn.execute(VAULT_SQL.read_text().encode())
        with data_api(local_stack, db) as ctx:
            env = {
                k: v
                for k, v in os.environ.items()
                if not k.startswith(("PG", "SUPABASE_", "DATABASE_", "BILLING_"))
            }
            env |= service_env(ctx, KEY, tmp_path / "outbox") | {
                "DATABASE_URL": cli_url(db.dsn),
                "PATH": f"{ROOT / '.venv' / 'bin'}:{CLI.parent}:{env.get('PATH', '')}",
                "DO_NOT_TRACK": "1",
            }
            done = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", "\n".join(commands)],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        with psycopg.connect(db.superuser_dsn) as conn:
            vaulted = conn.execute(
                "select name, decrypted_secret from vault.decrypted_secrets"
            ).fetchall()
            table_keys = conn.execute("select count(*) from private.attestation_keys").fetchone()
    assert done.returncode == 0, f"{cli.version}\n{done.stdout}\n{done.stderr}"
    assert not re.findall(r"^\s*WARN.*", done.stderr, re.M)  # config.toml parses cleanly
    assert vaulted == [("billing_attestation_key", KEY)]
    assert table_keys == (0,)  # nothing but Vault holds it: no step after the push
    assert (
        "ok   attestation key: the database accepts BILLING_ATTESTATION_KEY"
        " (held in Supabase Vault as billing_attestation_key)"
    ) in done.stdout
    assert "fail" not in done.stdout.split("Finished supabase db push.")[-1].split()
