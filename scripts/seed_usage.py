"""Seed realistic usage: users, conversations, messages and priced usage rows, loaded with COPY.

Heavy-tailed users, a model mix with prompt-cache tokens, partial and failed requests, costs
from the project's Pricer; the same --seed and --end give the same rows (see
`app/analytics/seed.py` for the shape). Everything loads in one transaction.

It writes only to the running local stack: `DATABASE_URL` is never read (it may name
production). Another database needs `--db-url` and `--allow-non-local`, and is refused while it
holds any user the seed did not make. `--truncate` removes only rows earlier seeds loaded
(see `app/analytics/seed_guard.py`).

Examples:
    # 200 users, 20,000 requests over 30 days into the running local stack (`make run`):
    .venv/bin/python scripts/seed_usage.py

    # A million requests, replacing earlier seeded rows (nobody else's):
    .venv/bin/python scripts/seed_usage.py --users 5000 --requests 1000000 --truncate

    # A scratch database that is not the local stack, holding no real users:
    .venv/bin/python scripts/seed_usage.py --allow-non-local \\
        --db-url postgresql://postgres:...@host:5432/postgres

Exit codes: 0 seeded; 1 refused (not the local stack without --allow-non-local, real users
in the database, this seed already loaded, or prices that cannot be vectorised); 2 usage
error; 3 no local stack, database unreachable or it refused the load.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime

import psycopg
from psycopg.conninfo import make_conninfo

from app.analytics import project
from app.analytics.rates import RatesError
from app.analytics.seed import SeedError, SeedSpec
from app.analytics.seed_copy import seed_database
from app.analytics.seed_guard import check_target
from app.analytics.source import resolve_source
from app.analytics.sources import SourceError
from app.core.pricing import Pricer
from app.local.postgres import SUPERUSER

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3
_DOC = __doc__ or ""


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seed_usage.py",
        description=_DOC.split("\n\n")[0],
        epilog=_DOC.split("\n\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--users", type=_positive, default=200, help="users (default 200)")
    parser.add_argument("--days", type=_positive, default=30, help="days of history (default 30)")
    parser.add_argument(
        "--requests", type=_positive, default=20_000, help="usage rows (default 20000)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--end", type=_moment, help="end of the data, exclusive (default: now, to the minute)"
    )
    parser.add_argument(
        "--truncate",
        action="store_true",
        help="first remove what earlier seeds loaded (only seeded users and their rows)",
    )
    parser.add_argument(
        "--db-url",
        help="PostgreSQL DSN (default: the running local stack as its superuser; never "
        "DATABASE_URL); anything but the local stack also needs --allow-non-local",
    )
    parser.add_argument(
        "--allow-non-local",
        action="store_true",
        help="allow --db-url to name a database other than the local stack (one holding "
        "no users but seeded ones)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    return parser


def choose_target(db_url: str | None, *, allow_non_local: bool) -> tuple[str, bool]:
    """The database to seed and whether it is the local stack (then as its superuser, who may
    skip row-by-row foreign-key triggers, see app/analytics/seed_copy.py).

    `app.analytics.resolve_source` without the settings' steps: `--db-url`, else the local
    stack; `seed_guard.check_target` refuses anything else without `allow_non_local`.
    """
    settings = project.settings()
    dsn = resolve_source(db_url, supabase=False, from_settings=False, settings=settings).dsn
    local_dsn = project.local_database_url(settings)
    local = check_target(dsn, local_dsn, allow_non_local=allow_non_local)
    return (make_conninfo(dsn, user=SUPERUSER) if local else dsn), local


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    began = time.perf_counter()

    def progress(message: str) -> None:
        if not args.quiet:
            print(f"[{time.perf_counter() - began:6.1f}s] {message}", file=sys.stderr, flush=True)

    try:
        dsn, local = choose_target(args.db_url, allow_non_local=args.allow_non_local)
    except SeedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except (SourceError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    spec = SeedSpec(users=args.users, days=args.days, requests=args.requests, seed=args.seed)
    if args.end:
        spec = dataclasses.replace(spec, end=args.end)
    try:
        result = seed_database(
            dsn, spec, Pricer(project.settings()), replace=args.truncate, real_users_ok=local,
            progress=progress, bars=not args.quiet,
        )  # fmt: skip
    except (SeedError, RatesError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except psycopg.Error as exc:
        print(f"error: the database refused the seed: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    checks = "set-wise" if result.set_wise_checks else "row by row"
    print(
        f"seeded {result.users:,} users, {result.conversations:,} conversations, "
        f"{result.messages:,} messages and {result.usage_rows:,} usage rows "
        f"({spec.start:%Y-%m-%d %H:%M} to {spec.end:%Y-%m-%d %H:%M} UTC) in "
        f"{result.generate_seconds + result.load_seconds:.1f}s: generated in "
        f"{result.generate_seconds:.1f}s, loaded in {result.load_seconds:.1f}s "
        f"({result.usage_rows / result.load_seconds:,.0f} usage rows/s, foreign keys checked "
        f"{checks})"
    )
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
