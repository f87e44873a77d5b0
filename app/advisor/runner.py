"""Apply migrations (to a given database, or a scratch one the caller supplies) and run every check.

The checks (`lints`, `grants`, `matrix`) need nothing but a psycopg connection. A scratch database
is injected (`scratch=app.local.scratch.fresh_database`): the advisor never imports `app.local`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from app.advisor import cli_rules
from app.advisor.billing import NAME as BILLING_CHECK
from app.advisor.billing import check_billing_writes
from app.advisor.grants import check_api_grants
from app.advisor.lints import LINTS
from app.advisor.matrix import check_cross_user_rls
from app.advisor.result import CheckResult, all_passed
from app.db.migrate import MigrationError, apply_migrations, default_migrations_dir

logger = logging.getLogger(__name__)

MIGRATIONS_CHECK = "migrations_apply"

# Names are splinter's where one lint covers the check.
CHECKS: dict[str, Callable[[psycopg.Connection], CheckResult]] = {
    "rls_enabled": LINTS["rls_enabled"],
    "auth_rls_initplan": LINTS["auth_rls_initplan"],
    "unindexed_foreign_keys": LINTS["unindexed_foreign_keys"],
    "function_search_path_mutable": LINTS["function_search_path_mutable"],
    "security_definer_view": LINTS["security_definer_view"],
    "api_grants": check_api_grants,
    "unsafe_policies": LINTS["unsafe_policies"],
    BILLING_CHECK: check_billing_writes,
    "cross_user_rls": check_cross_user_rls,
}
CHECK_NAMES: tuple[str, ...] = (MIGRATIONS_CHECK, *CHECKS)

Scratch = Callable[[], AbstractContextManager[tuple[str, str]]]
"""Starts a throw-away database and yields (DSN of a migration role, a label without secrets)."""


class SetupError(RuntimeError):
    """The database could not be reached, started or bootstrapped: nothing was checked."""


@dataclass(frozen=True)
class Validation:
    """What `validate` found, and where."""

    results: list[CheckResult]
    database: str  # where the checks ran, without credentials
    applied: list[str] = field(default_factory=list)  # migrations applied by this run

    @property
    def passed(self) -> bool:
        return all_passed(self.results)


def run_checks(
    dsn: str, *, schemas: Sequence[str] | None = None, skip: Collection[str] = ()
) -> list[CheckResult]:
    """Run every check (except `skip`) against a database whose migrations are applied.

    `schemas` overrides the exposed schemas (else `pgrst.db_schemas`, else `public`). The RLS
    matrix writes only inside a rolled-back transaction, but triggers that reach outside
    PostgreSQL (pg_net, dblink) cannot be rolled back: skip `cross_user_rls` on such databases.
    """
    unknown = set(skip) - set(CHECKS)
    if unknown:
        raise ValueError(f"unknown check(s) to skip: {', '.join(sorted(unknown))}")
    results: list[CheckResult] = []
    for name, check in CHECKS.items():
        if name in skip:
            continue
        # One connection per check: a check that fails mid-way cannot poison the next one.
        with _connect(dsn) as conn:
            if schemas:
                conn.execute(
                    "select set_config('pgrst.db_schemas', %s, false)", [",".join(schemas)]
                )
            if name != "cross_user_rls":  # the matrix runs with PostgREST's search_path
                conn.execute("set search_path = ''")  # deparse policies schema-qualified
            results.append(check(conn))
    return results


def validate(
    migrations_dir: Path | None = None,
    *,
    db_url: str | None = None,
    scratch: Scratch | None = None,
    apply: bool = False,
    schemas: Sequence[str] | None = None,
    skip: Collection[str] = (),
) -> Validation:
    """Apply `migrations_dir` and run the checks.

    With `db_url`: check that database, applying the migrations first only when `apply` is set.
    Else `scratch` (e.g. `app.local.scratch.fresh_database`) gives a throw-away database, the
    migrations are applied to it, and it is removed. A migration that fails is itself a failed
    check (file, line and SQL error) and the other checks do not run on the half-built schema;
    so is a file that breaks a rule of the Supabase CLI (`cli_rules`), before anything is applied.
    """
    migrations = Path(migrations_dir) if migrations_dir else default_migrations_dir()
    if db_url is not None:
        return _validate(db_url, _describe(db_url), migrations, apply, schemas, skip)
    if scratch is None:
        raise SetupError(
            "no database to check: pass db_url=..., or a scratch database with"
            " scratch=app.local.scratch.fresh_database (from app.local.scratch import"
            " fresh_database)"
        )
    with _started(scratch) as (dsn, where):
        return _validate(dsn, where, migrations, True, schemas, skip)


def _validate(
    dsn: str,
    where: str,
    migrations: Path,
    apply: bool,
    schemas: Sequence[str] | None,
    skip: Collection[str],
) -> Validation:
    applied: list[str] = []
    results: list[CheckResult] = []
    if apply:
        broken = cli_rules.problems(migrations)
        if broken:  # `supabase db push` would fail or half-apply them: as a failed migration
            detail = [*broken, "the other checks did not run"]
            return Validation([CheckResult(MIGRATIONS_CHECK, "ERROR", False, detail)], where)
        try:
            applied = [f"{m.version}_{m.name}" for m in apply_migrations(dsn, migrations)]
        except MigrationError as exc:
            detail = [f"{exc.path}:{exc.line}: {exc.error}", "the other checks did not run"]
            return Validation([CheckResult(MIGRATIONS_CHECK, "ERROR", False, detail)], where)
        except psycopg.OperationalError as exc:
            raise SetupError(f"cannot apply migrations to {where}: {exc}") from exc
        results.append(
            CheckResult(MIGRATIONS_CHECK, "ERROR", True, [f"{len(applied)} migration(s) applied"])
        )
    results += run_checks(dsn, schemas=schemas, skip=skip)
    return Validation(results, where, applied)


@contextmanager
def _started(scratch: Scratch) -> Iterator[tuple[str, str]]:
    """Enter `scratch`, its start-up failure (a RuntimeError such as ScratchError) a SetupError."""
    with ExitStack() as stack:
        try:
            database = stack.enter_context(scratch())
        except RuntimeError as exc:
            raise SetupError(str(exc)) from exc
        yield database


@contextmanager
def _connect(dsn: str) -> Iterator[psycopg.Connection]:
    try:
        conn = psycopg.connect(dsn, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise SetupError(f"cannot connect to {_describe(dsn)}: {exc}") from exc
    with conn:
        yield conn


def _describe(dsn: str) -> str:
    """host:port/dbname as user, never the password."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "the given database"
    host = info.get("host") or "localhost"
    return (
        f"{info.get('user') or '?'}@{host}:{info.get('port') or 5432}/{info.get('dbname') or '?'}"
    )
