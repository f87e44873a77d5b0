"""Serve the REST stand-in alone, on a fresh database, for an official client's own test suite.

`python -m app.local.rest.serve --config supabase/postgrest-js.toml --sql schema.sql --sql
seed.sql` starts a throw-away embedded PostgreSQL bootstrapped like Supabase's, runs the SQL
files in it as `supabase db reset` runs migrations and seed (as the cluster's superuser:
Supabase's `postgres` may `alter role authenticator set pgrst.…`, ours may not), and serves
`/rest/v1` on `--port` with the `[api]` settings of `--config`. No `apikey` is asked for: the
CLI's Kong checks none on `/rest/v1` either, and a request without `Authorization` is `anon`,
which is what postgrest-js's suite relies on (it sends neither). The full stack's gateway keeps
hosted Supabase's rule.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import psycopg
import uvicorn
from psycopg_pool import AsyncConnectionPool
from starlette.applications import Starlette
from starlette.routing import Mount

from app.local.cluster import prepare_local_cluster
from app.local.context import StackContext
from app.local.keys_config import load_keys_config, stack_keys
from app.local.pg_install import find_install
from app.local.postgres import EmbeddedPostgres, free_port
from app.local.rest.api import RestApp
from app.local.rest.settings import CONFIG_TOML, load_settings

EXAMPLE = """example (postgrest-js's suite, from its package folder):
  python -m app.local.rest.serve --config supabase/postgrest-js.toml \\
      --sql test/supabase/migrations/00000000000000_schema.sql --sql test/supabase/seed.sql"""


def build_rest_app(ctx: StackContext, settings_path: Path) -> Starlette:
    """`/rest/v1` only, its pool opened and closed by the lifespan."""
    rest = RestApp(ctx, load_settings(ctx.extra.get("rest"), settings_path))

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        pool = AsyncConnectionPool(
            ctx.dsn("authenticator"), min_size=1, max_size=10, open=False, name="rest"
        )
        await pool.open(wait=True, timeout=30)
        ctx.rest_pool = pool
        try:
            yield
        finally:
            await pool.close()

    return Starlette(routes=[Mount("/rest/v1", rest)], lifespan=lifespan)


# What Supabase's initial schema grants on new objects in `public`, for both owners that create
# them; the CLI revokes it when `[api] auto_expose_new_tables = false`.
_EXPOSE_SQL = """
alter default privileges for role postgres, supabase_admin in schema public
  grant all on tables to anon, authenticated, service_role;
alter default privileges for role postgres, supabase_admin in schema public
  grant all on sequences to anon, authenticated, service_role;
alter default privileges for role postgres, supabase_admin in schema public
  grant all on functions to anon, authenticated, service_role;
"""


def expose_new_objects(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(_EXPOSE_SQL)  # many statements, no parameters


def load_sql(dsn: str, files: Sequence[Path]) -> None:
    """Each file in one transaction, in order; the first failure stops the run."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        for path in files:
            with conn.transaction():
                conn.execute(path.read_text())  # many statements, no parameters


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m app.local.rest.serve",
        description=__doc__.splitlines()[0] if __doc__ else None,
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", type=Path, default=CONFIG_TOML, help="its [api] is read")
    parser.add_argument("--sql", type=Path, action="append", default=[], help="run in order")
    parser.add_argument("--port", type=int, default=54321)
    args = parser.parse_args(argv)
    missing = [p for p in [args.config, *args.sql] if not p.is_file()]
    if missing:
        sys.stderr.write(f"not a file: {', '.join(map(str, missing))}\n")
        return 2
    # uvicorn re-raises SIGTERM/SIGINT once it has shut down: as SystemExit, not a default
    # death, so the embedded PostgreSQL is stopped and its folder removed.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _exit_on_signal)
    with tempfile.TemporaryDirectory(prefix="rest-serve-") as tmp:
        pg = EmbeddedPostgres(Path(tmp) / "pgdata", free_port(), find_install(), durable=False)
        pg.start()
        try:
            prepare_local_cluster(pg.superuser_dsn)
            keys = stack_keys(Path(tmp), load_keys_config())
            ctx = StackContext(keys=keys, api_url=f"http://127.0.0.1:{args.port}", db_port=pg.port)
            try:
                if load_settings(path=args.config).auto_expose_new_tables:
                    expose_new_objects(pg.superuser_dsn)
                load_sql(pg.superuser_dsn, args.sql)
            except psycopg.Error as exc:
                sys.stderr.write(f"loading the SQL failed: {exc}\n")
                return 1
            app = build_rest_app(ctx, args.config)
            sys.stderr.write(f"REST stand-in on http://127.0.0.1:{args.port}/rest/v1\n")
            uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")
        finally:
            pg.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
