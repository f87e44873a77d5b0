"""A throw-away embedded PostgreSQL, bootstrapped like Supabase, for checks that need a database.

`app.advisor.validate(..., scratch=fresh_database)` applies the migrations to it; the advisor itself
never imports `app.local`, so the caller (a script, a notebook, a test) injects this.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from app.local.cluster import prepare_local_cluster
from app.local.pg_install import PostgresError, find_install
from app.local.postgres import EmbeddedPostgres, free_port


class ScratchError(RuntimeError):
    """The scratch PostgreSQL could not be started or bootstrapped."""


@contextmanager
def fresh_database() -> Iterator[tuple[str, str]]:
    """Yield (DSN of the `postgres` role, a label without credentials); remove it all on exit."""
    with tempfile.TemporaryDirectory(prefix="validate-migrations-") as tmp:
        try:
            pg = EmbeddedPostgres(Path(tmp) / "pgdata", free_port(), find_install(), durable=False)
            pg.start()
        except (PostgresError, OSError) as exc:
            raise ScratchError(f"cannot start an embedded PostgreSQL: {exc}") from exc
        try:
            try:
                prepare_local_cluster(pg.superuser_dsn)
            except psycopg.OperationalError as exc:
                raise ScratchError(f"embedded PostgreSQL: {exc}") from exc
            version = re.search(r"\d+(?:\.\d+)*", pg.install.version)  # postgres (PostgreSQL) 15.8
            label = f"a fresh embedded PostgreSQL {version.group() if version else ''}".rstrip()
            yield pg.dsn("postgres"), label
        finally:
            pg.stop()
