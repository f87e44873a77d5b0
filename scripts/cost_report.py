"""Per-user LLM cost report for a time window: tables (CSV/Markdown/HTML) and PNG charts.

The aggregation runs in PostgreSQL (the analytics SQL functions); this script only picks the
source and the window, then calls `app.analytics.report`.

Examples:
    # November 2026 from the running local stack (`make run`), CSV tables + an HTML page:
    .venv/bin/python scripts/cost_report.py --since 2026-11-01 --until 2026-12-01 --out report/

    # One user (by email or id) and one model, Markdown, straight from a database:
    .venv/bin/python scripts/cost_report.py --db-url postgresql://postgres:...@host:5432/postgres \\
        --user ana@example.com --model claude-sonnet-4-5 --format md --out report/

    # Forecast November although the window runs into December:
    .venv/bin/python scripts/cost_report.py --since 2026-11-01 --month 2026-11 --out report/

    # A Supabase project, with its secret key from the environment:
    SUPABASE_SECRET_KEY=sb_secret_... .venv/bin/python scripts/cost_report.py \\
        --supabase-url https://<ref>.supabase.co --format html --out report/

Exit codes: 0 report written; 1 no usage in the window (nothing written); 2 usage error;
3 source unreachable or refused the query; 4 the analytics SQL functions are missing (apply
supabase/migrations, e.g. `chat-stream migrate --db-url ...`).
"""

from __future__ import annotations

import argparse
import sys
import uuid
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

from app.analytics import load, money, project, report, sources
from app.analytics.progress import progress_bar
from app.analytics.source import resolve_source

EXIT_OK, EXIT_NO_DATA, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_NO_FUNCTIONS = 0, 1, 2, 3, 4
_DOC = __doc__ or ""


def parse_moment(text: str) -> datetime:
    try:
        return report.parse_moment(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a date or ISO date-time: {text!r}") from exc


def parse_usd(text: str) -> Decimal:
    try:
        amount = Decimal(text)
    except InvalidOperation as exc:
        raise argparse.ArgumentTypeError(f"not an amount in USD: {text!r}") from exc
    if not amount.is_finite() or amount < 0:
        raise argparse.ArgumentTypeError(f"not an amount in USD: {text!r}")
    return amount


def parse_user(text: str) -> str:
    """A user id (UUID) or an email address (looked up once the source is known)."""
    try:
        return str(uuid.UUID(text))
    except ValueError:
        pass
    if "@" not in text:
        raise argparse.ArgumentTypeError(f"not a user id (UUID) or an email: {text!r}")
    return text.strip()


def parse_month(text: str) -> date:
    try:
        return report.parse_month(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a month (YYYY-MM): {text!r}") from exc


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cost_report.py",
        description=_DOC.split("\n\n")[0],
        epilog=_DOC.split("\n\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    window = parser.add_argument_group("window (UTC, half-open: since <= t < until)")
    window.add_argument("--since", type=parse_moment, help="start (default: until - 30 days)")
    window.add_argument(
        "--until", type=parse_moment, help="end, exclusive (default: tomorrow 00:00 UTC)"
    )
    window.add_argument("--user", type=parse_user, help="one user only: email or id (UUID)")
    window.add_argument("--model", help="one model only (e.g. claude-sonnet-4-5)")
    window.add_argument(
        "--month", type=parse_month, metavar="YYYY-MM",
        help="month to forecast (default: the month of the window's last complete day)",
    )  # fmt: skip
    out = parser.add_argument_group("output")
    out.add_argument(
        "--format",
        action="append",
        choices=report.FORMATS,
        dest="formats",
        help="table format, repeatable (default: csv and html); PNG charts are always written",
    )
    out.add_argument("--out", type=Path, default=Path("cost-report"), help="output folder")
    out.add_argument("--top", type=int, default=20, help="top spenders and conversations shown")
    out.add_argument("--quiet", action="store_true", help="no progress on stderr")
    budgets = parser.add_argument_group("budgets (default: DAILY_BUDGET_USD, MONTHLY_BUDGET_USD)")
    budgets.add_argument("--daily-budget", type=parse_usd, metavar="USD")
    budgets.add_argument("--monthly-budget", type=parse_usd, metavar="USD")
    budgets.add_argument(
        "--cost-tolerance",
        type=parse_usd,
        metavar="USD",
        help="flag turns whose provider-reported cost differs from ours by more"
        " (default: PROVIDER_COST_TOLERANCE_USD)",
    )
    source = parser.add_argument_group(
        "source (default: DATABASE_URL, else SUPABASE_URL + key, else the running local stack)"
    )
    source.add_argument("--db-url", help="PostgreSQL DSN (as postgres/service role: all users)")
    source.add_argument("--supabase-url", help="Supabase project URL (uses .rpc(), not raw rows)")
    source.add_argument(
        "--service-key",
        help="the project's secret key (default: env SUPABASE_SECRET_KEY, else the legacy "
        "SUPABASE_SERVICE_ROLE_KEY)",
    )
    return parser


def choose_source(args: argparse.Namespace) -> sources.Source:
    """The source `app.analytics.resolve_source` picks for the flags given."""
    return resolve_source(args.db_url, args.supabase_url, args.service_key)


def options_from(args: argparse.Namespace) -> report.ReportOptions:
    """The window and budgets (the settings' budgets unless given); `ValueError` if unusable."""
    return report.report_options(
        project.settings(), since=args.since, until=args.until, model=args.model,
        month=args.month, daily_budget=args.daily_budget, monthly_budget=args.monthly_budget,
        top_n=args.top, cost_tolerance=args.cost_tolerance,
    )  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2)
        return int(exc.code or 0)
    try:
        options = options_from(args)
        source = choose_source(args)
    except ValueError as exc:
        parser.print_usage(sys.stderr)
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except sources.SourceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    bar = progress_bar(
        total=report.STEPS + report.write_steps(args.formats or ("csv", "html")),
        desc="cost report", unit="step", quiet=args.quiet,
    )  # fmt: skip

    def progress(message: str) -> None:
        bar.set_postfix_str(message, refresh=False)
        bar.update()

    try:
        cost_report = report.cost_report(
            source, options=options, user=args.user, progress=progress
        )  # priced with the project's settings
        options = cost_report.options
    except load.UnknownUser as exc:
        bar.close()
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except sources.FunctionsMissing as exc:
        bar.close()
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_NO_FUNCTIONS
    except sources.SourceError as exc:
        bar.close()
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    finally:
        if isinstance(source, sources.SupabaseSource):
            source.close()
    if cost_report.empty:
        bar.close()
        print(
            f"no usage between {options.since.isoformat()} and {options.until.isoformat()}"
            + (f" for user {args.user}" if options.user_id else "")
            + (f" on model {options.model}" if options.model else ""),
            file=sys.stderr,
        )
        return EXIT_NO_DATA
    written = report.write_report(cost_report, args.out, args.formats or ("csv", "html"), progress)
    bar.n = bar.total  # the steps are estimates (fewer charts when a table is empty)
    bar.close()
    totals = cost_report.totals
    print(
        f"{totals['users']:,} users, {totals['requests']:,} requests, "
        f"{money.format_usd(totals['cost_usd'])} ({totals['cost_usd']:f} USD exactly) between "
        f"{options.since:%Y-%m-%d %H:%M} and {options.until:%Y-%m-%d %H:%M} UTC"
    )
    for path in written:
        print(path)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
