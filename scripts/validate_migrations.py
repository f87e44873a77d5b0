"""Validate Supabase migrations: apply them, then run advisor checks and a cross-user RLS matrix.

Exit codes: 0 every check passed, 1 a check failed (a migration that does not apply counts),
2 usage error, 3 the database could not be reached, started or bootstrapped.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from app.advisor import CHECK_NAMES, SetupError, format_table, to_json, validate
from app.local.scratch import fresh_database

EXAMPLES = """\
examples:
  # apply supabase/migrations to a fresh embedded PostgreSQL and check it (the default)
  python scripts/validate_migrations.py

  # in CI, against a database you already migrated (e.g. `supabase start` + `supabase db reset`)
  python scripts/validate_migrations.py --db-url postgresql://postgres:postgres@127.0.0.1:54322/postgres

  # apply your own migrations to an empty database first, JSON for tooling
  python scripts/validate_migrations.py --migrations db/migrations \\
      --db-url "$DB_URL" --apply --format json

checks: {checks}
exit codes: 0 all passed, 1 a check failed, 2 usage error, 3 could not connect/start/bootstrap
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="validate_migrations.py",
        description=(
            "Apply Supabase migrations and check them in the spirit of Supabase's database"
            " advisor: RLS on every exposed table, (select auth.uid()) in policies, indexed"
            " foreign keys, pinned search_path, no security-definer views, grants that match"
            " the policies, no always-true write policies, and a cross-user RLS matrix."
        ),
        epilog=EXAMPLES.format(checks=", ".join(CHECK_NAMES)),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--migrations",
        type=Path,
        default=Path("supabase/migrations"),
        metavar="DIR",
        help="folder of <timestamp>_<name>.sql files (default: supabase/migrations)",
    )
    parser.add_argument(
        "--db-url",
        metavar="DSN",
        help="check this database instead of a fresh embedded one (use the postgres role)",
    )
    parser.add_argument(
        "--apply", action="store_true", help="with --db-url: apply pending migrations first"
    )
    parser.add_argument("--format", choices=("table", "json"), default="table")
    parser.add_argument(
        "--schema",
        action="append",
        metavar="NAME",
        help="an exposed schema (repeatable; default: pgrst.db_schemas, else public)",
    )
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=CHECK_NAMES[1:],
        metavar="CHECK",
        help="do not run this check (repeatable), e.g. cross_user_rls on a database whose"
        " triggers call out over the network",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2)
        return int(exc.code or 0)
    if args.apply and not args.db_url:
        parser.print_usage(sys.stderr)
        print("error: --apply needs --db-url (a fresh database always gets them)", file=sys.stderr)
        return 2
    if (args.apply or not args.db_url) and not args.migrations.is_dir():
        print(f"error: no migrations folder at {args.migrations}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        outcome = validate(
            args.migrations,
            db_url=args.db_url,
            scratch=fresh_database,
            apply=args.apply,
            schemas=args.schema,
            skip=set(args.skip),
        )
    except SetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    if args.format == "json":
        print(to_json(outcome.results, database=outcome.database, applied=outcome.applied))
    else:
        print(f"checked {outcome.database}\n")
        print(format_table(outcome.results))
    return 0 if outcome.passed else 1


if __name__ == "__main__":
    sys.exit(main())
