"""`chat-stream check`: a pre-flight against the configured project, one line per check.

Every probe is read-only but one: the JWKS, Auth's public settings, the Data API with
deliberately invalid RPC arguments (the database refuses them before the function body can change
anything), a MAC the database only compares, a scratch file in the outbox. The one write: to read
a freshly issued token, a throwaway user is created, signs in and is deleted (`signing`). The
provider is tried only with `--provider` (one token at most). Exit status: 0 when nothing failed,
1 otherwise; a setting the service cannot start without is a `ConfigError` (exit 2) before any
probe runs. Migrations that cannot be verified (no `DATABASE_URL` and a Data API that hides
their history) fail, unless the operator passes `--skip-migrations`.

This module runs the checks and prints them; each family lives in its own module: `auth`,
`signing` (which key signs and which AUTH_MODE fits), `database`, `host` (the outbox) and
`providers`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO

import httpx

from app.config import Settings, require_service
from app.db.migrate import default_migrations_dir
from app.ops.check.auth import check_issuer, check_publishable_key, check_secret_key
from app.ops.check.database import (
    CHAT_RPCS,
    check_attestation,
    check_migrations,
    expected_parameters,
    rpc_probe,
)
from app.ops.check.host import check_outbox
from app.ops.check.project import Project
from app.ops.check.providers import check_providers
from app.ops.check.result import Result
from app.ops.check.signing import check_signing_keys

__all__ = ["Result", "collect", "expected_parameters", "run_checks"]


def run_checks(
    settings: Settings,
    *,
    db_url: str | None = None,
    provider: bool = False,
    migrations_dir: Path | None = None,
    skip_migrations: bool = False,
    out: TextIO | None = None,
) -> int:
    """Print one line per check (to stdout unless `out`); 1 if any failed."""
    results = list(
        collect(
            settings,
            db_url=db_url,
            provider=provider,
            migrations_dir=migrations_dir,
            skip_migrations=skip_migrations,
        )
    )
    for result in results:
        print(result.line(), file=out or sys.stdout)
    return 1 if any(r.status == "fail" for r in results) else 0


def collect(
    settings: Settings,
    *,
    db_url: str | None = None,
    provider: bool = False,
    migrations_dir: Path | None = None,
    skip_migrations: bool = False,
) -> Iterator[Result]:
    require_service(settings)
    timeout = httpx.Timeout(max(settings.db_timeout_seconds, 5.0))
    with httpx.Client(timeout=timeout) as http:
        project = Project(
            settings=settings,
            http=http,
            db_url=db_url or settings.database_url,
            db_source="--db-url" if db_url else "DATABASE_URL",
            migrations_dir=migrations_dir or default_migrations_dir(),
            skip_migrations=skip_migrations,
        )
        probes: list[tuple[str, Callable[[Project], Result]]] = [
            ("signing keys", check_signing_keys),
            ("publishable key", check_publishable_key),
            ("secret key", check_secret_key),
            ("issuer", check_issuer),
            ("migrations", check_migrations),
            *[(f"rpc {name}", rpc_probe(name)) for name in CHAT_RPCS],
            ("attestation key", check_attestation),
            ("outbox", check_outbox),
        ]
        for name, probe in probes:
            yield _guarded(name, probe, project)
        if provider:
            yield from check_providers(project)
        else:
            yield Result("provider", "skip", "not tried (pass --provider; it may cost a token)")


def _guarded(name: str, probe: Callable[[Project], Result], project: Project) -> Result:
    """A probe whose upstream cannot be reached fails with that reason instead of a traceback."""
    try:
        return probe(project)
    except httpx.HTTPError as exc:
        return Result(name, "fail", f"cannot reach {project.base}: {exc!r}")
