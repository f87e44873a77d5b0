"""The real Supabase CLI (`npx supabase`, pinned in package.json), run against a test database.

`make tools` (run by `make test`) installs it with `npm ci`. Without it the tests that need it
skip naming that command; with CI=true they fail, since CI must run them. Every run works in a
throw-away copy of `supabase/` (the CLI writes `supabase/.temp/` beside the migrations).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.database import ROOT

CLI = ROOT / "node_modules" / ".bin" / "supabase"
INSTALL = "npm ci (in the repo root; `make tools` runs it)"
PINNED = "2.117.0"


@dataclass(frozen=True)
class SupabaseCli:
    path: Path
    version: str

    def run(
        self,
        *args: str,
        workdir: Path,
        env: dict[str, str] | None = None,
        check: bool = True,
        timeout: float = 180,
    ) -> subprocess.CompletedProcess[str]:
        """`supabase <args>` in `workdir` (its `supabase/` folder); stdout and stderr as text."""
        environ = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "SUPABASE_"))}
        environ |= {"DO_NOT_TRACK": "1", "SUPABASE_TELEMETRY_DISABLED": "1"} | (env or {})
        done = subprocess.run(
            [str(self.path), *args],
            cwd=workdir,
            env=environ,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"supabase {' '.join(args)} exited {done.returncode}\n"
                f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
            )
        return done


@functools.cache
def _found() -> SupabaseCli | None:
    if not CLI.exists():
        return None
    out = subprocess.run([str(CLI), "--version"], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        return None
    return SupabaseCli(CLI, out.stdout.strip())


def supabase_cli() -> SupabaseCli:
    """The installed CLI; skips (fails under CI=true) naming the install command when absent."""
    cli = _found()
    if cli is None:
        reason = f"the Supabase CLI is not installed at {CLI.relative_to(ROOT)}: run {INSTALL}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return cli


def project_copy(
    folder: Path, migrations: Iterable[Path] | None = None, *, config: str | None = None
) -> Path:
    """`folder/supabase/` with our config.toml (or `config`) and the migrations (default: all)."""
    target = folder / "supabase" / "migrations"
    target.mkdir(parents=True)
    source = ROOT / "supabase" / "config.toml"
    (folder / "supabase" / "config.toml").write_text(config or source.read_text())
    for path in sorted(migrations or (ROOT / "supabase" / "migrations").glob("*.sql")):
        shutil.copy(path, target / path.name)
    return folder


def cli_url(dsn: str) -> str:
    """The CLI's --db-url: our loopback cluster speaks no TLS."""
    return f"{dsn}{'&' if '?' in dsn else '?'}sslmode=disable"


def report_header() -> str:
    """One line for the top of the test log: which CLI the real-CLI tests run."""
    cli = _found()
    if cli is None:
        return f"supabase CLI: not installed (run {INSTALL}); its tests skip, or fail under CI"
    return f"supabase CLI: {cli.version} ({cli.path.relative_to(ROOT)}; pinned {PINNED})"
