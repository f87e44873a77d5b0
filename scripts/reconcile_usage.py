"""Prove the daily usage rollup (public.usage_daily) equals the raw usage rows, exactly.

Groups public.usage_logs by user, UTC day, provider, model and status in PostgreSQL, compares
every group with the rollup (counts, tokens, cost as exact numeric) and prints the grand totals
of both sides to the last decimal. Run as postgres or the service role (RLS hides other users).

Examples:
    # The running local stack (`make run`):
    .venv/bin/python scripts/reconcile_usage.py

    # Any database the migrations were applied to:
    .venv/bin/python scripts/reconcile_usage.py --db-url postgresql://postgres:...@host:5432/postgres

Exit codes: 0 the rollup equals the raw rows; 1 they differ (the differing groups are printed);
2 usage error; 3 database unreachable or it refused the query.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import psycopg

from app.analytics.reconcile import reconcile
from app.analytics.source import resolve_source
from app.analytics.sources import SourceError

EXIT_OK, EXIT_DIFFER, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3
_DOC = __doc__ or ""


def choose_dsn(db_url: str | None) -> str:
    """The database `app.analytics.resolve_source` picks (SQL only: no Supabase API)."""
    return resolve_source(db_url, supabase=False).dsn


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="reconcile_usage.py",
        description=_DOC.split("\n\n")[0],
        epilog=_DOC.split("\n\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--db-url", help="PostgreSQL DSN (default: DATABASE_URL, else local stack)")
    parser.add_argument("--show", type=int, default=20, help="differing groups shown (default 20)")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    try:
        dsn = choose_dsn(args.db_url)
        began = time.perf_counter()
        result = reconcile(dsn, limit=args.show)
    except (SourceError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except psycopg.Error as exc:
        print(f"error: the database refused the reconciliation: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    seconds = time.perf_counter() - began
    print(
        f"raw usage rows   : {result.raw_rows:,} in {result.raw_groups:,} groups, "
        f"cost {result.raw_cost_usd:f} USD\n"
        f"rollup           : {result.rollup_requests:,} requests in {result.rollup_groups:,} "
        f"groups, cost {result.rollup_cost_usd:f} USD\n"
        f"equal exactly    : {result.equal} ({seconds:.2f}s)"
    )
    for row in result.mismatches:
        print("differs:", {k: (f"{v:f}" if hasattr(v, "as_tuple") else str(v))
                           for k, v in row.items()})  # fmt: skip
    return EXIT_OK if result.equal else EXIT_DIFFER


if __name__ == "__main__":
    sys.exit(main())
