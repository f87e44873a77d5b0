"""Per-user cost report on a million usage rows: server-side aggregation vs pandas on every row.

Both ways build the same per-user table (requests, tokens by kind, exact cost, outcome counts,
first/last activity, average cost per request) for the whole seeded window, in one run:

- server: `app.analytics.load_per_user` (the `public.usage_per_user` SQL function) and
  `costs.user_table`: one row per user crosses the wire;
- naive: every usage row of the window fetched with psycopg into a DataFrame (only the columns
  the table needs) and grouped by user in pandas, then the same `costs.user_table`.

It checks the two tables agree to the last decimal, then prints the medians and the ratio. The
data lives in a dedicated embedded PostgreSQL in a temporary folder (never the dev database),
seeded by `app.analytics.seed` as its superuser, analysed, then thrown away.

Example:
    .venv/bin/python scripts/bench_analytics.py --requests 1000000 --repeat 3 --explain

Exit codes: 0 done (targets met or not: read the output); 1 the two tables disagree;
2 usage error.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import psycopg

from app.analytics import costs, load
from app.analytics.seed import SeedSpec
from app.analytics.seed_copy import seed_database
from app.config import Settings
from app.local.postgres import free_port
from app.local.stack import LocalStack
from app.pricing import Pricer

TARGET_SECONDS, TARGET_RATIO = 5.0, 10.0
_DOC = __doc__ or ""
_NAIVE_COLUMNS = (
    "user_id", "tokens_in", "tokens_out", "cache_read_tokens", "cache_write_tokens", "cost_usd",
    "status", "estimated", "created_at",
)  # fmt: skip


@contextmanager
def dedicated_database(keep: Path | None) -> Iterator[LocalStack]:
    """A throwaway embedded PostgreSQL, bootstrapped and migrated like the local stack."""
    with tempfile.TemporaryDirectory(prefix="bench-analytics-") as tmp:
        folder = keep or Path(tmp)
        settings = Settings(_env_file=None, local_stack_dir=folder)  # type: ignore[call-arg]
        stack = LocalStack(
            settings, stack_dir=folder, api_port=free_port(), db_port=free_port(), durable=False
        )
        stack.start_database()
        try:
            yield stack
        finally:
            stack.stop_database()


def server_side(dsn: str, window: load.Window) -> pd.DataFrame:
    return costs.user_table(load.load_per_user(load.PostgresSource(dsn), window))


def naive(dsn: str, window: load.Window) -> pd.DataFrame:
    """Every row of the window into pandas, grouped there (no per-row Python beyond the driver)."""
    query = (
        f"select {', '.join(_NAIVE_COLUMNS)} from public.usage_logs"  # noqa: S608 - constants
        " where created_at >= %s and created_at < %s"
    )
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(query, (window.since, window.until)).fetchall()
        emails = dict(conn.execute("select id, email from public.users").fetchall())
    frame = pd.DataFrame(rows, columns=list(_NAIVE_COLUMNS))
    frame["user_id"] = frame["user_id"].astype(str)
    frame["partial"] = frame["status"] == "partial"
    frame["error"] = frame["status"] == "error"
    grouped = frame.groupby("user_id", sort=False).agg(
        requests=("status", "size"),
        tokens_in=("tokens_in", "sum"),
        tokens_out=("tokens_out", "sum"),
        cache_read_tokens=("cache_read_tokens", "sum"),
        cache_write_tokens=("cache_write_tokens", "sum"),
        cost_usd=("cost_usd", "sum"),
        partial_requests=("partial", "sum"),
        error_requests=("error", "sum"),
        estimated_requests=("estimated", "sum"),
        first_active=("created_at", "min"),
        last_active=("created_at", "max"),
    )
    per_user = grouped.reset_index()
    per_user.insert(1, "email", per_user["user_id"].map({str(k): v for k, v in emails.items()}))
    return costs.user_table(per_user)


def _time(fn: Callable[[], pd.DataFrame], repeat: int) -> tuple[list[float], pd.DataFrame]:
    samples, result = [], pd.DataFrame()
    for _ in range(repeat):
        began = time.perf_counter()
        result = fn()
        samples.append(time.perf_counter() - began)
    return samples, result


def agree(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    """Same users with the same requests, tokens and exact costs."""
    columns = ["user_id", "requests", *costs.TOKEN_COLUMNS, "cost_usd", "avg_cost_per_request"]
    left = a[columns].sort_values("user_id", ignore_index=True)
    right = b[columns].sort_values("user_id", ignore_index=True)
    return bool(left.astype(str).equals(right.astype(str)))


def explain(superuser_dsn: str, window: load.Window) -> list[str]:
    """The plan inside `usage_per_user` (auto_explain of nested statements, sent as notices)."""
    notices: list[str] = []
    with psycopg.connect(superuser_dsn) as conn:
        conn.add_notice_handler(lambda diag: notices.append(diag.message_primary or ""))
        conn.execute("load 'auto_explain'")
        for setting, value in (
            ("auto_explain.log_min_duration", "0"), ("auto_explain.log_analyze", "on"),
            ("auto_explain.log_buffers", "on"), ("auto_explain.log_nested_statements", "on"),
            ("client_min_messages", "log"),
        ):  # fmt: skip
            conn.execute("select set_config(%s, %s, false)", (setting, value))
        conn.execute(
            "select count(*) from public.usage_per_user(%s, %s, null)", (window.since, window.until)
        )
    return [n for n in notices if "usage_logs" in n]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench_analytics.py",
        description=_DOC.split("\n\n")[0],
        epilog=_DOC.split("\n\n", 3)[3],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=5_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each way (median)")
    parser.add_argument("--explain", action="store_true", help="print the server-side plan")
    parser.add_argument("--json", type=Path, help="also write the numbers as JSON here")
    parser.add_argument("--keep", type=Path, help="keep the database in this folder")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    if min(args.requests, args.users, args.days, args.repeat) < 1:
        print("error: counts must be at least 1", file=sys.stderr)
        return 2

    spec = SeedSpec(args.users, args.days, args.requests, args.seed,
                    end=datetime(2026, 11, 20, tzinfo=UTC))  # fmt: skip
    window = load.Window(spec.start, spec.end)
    results: dict[str, Any] = {"requests": args.requests, "users": args.users, "days": args.days}
    with dedicated_database(args.keep) as stack:
        dsn, superuser = stack.ctx.db_url, stack.pg.superuser_dsn
        print(f"seeding {args.requests:,} usage rows into a dedicated database ...", flush=True)
        seeded = seed_database(superuser, spec, Pricer(stack.settings))
        results["seed_seconds"] = round(seeded.generate_seconds + seeded.load_seconds, 2)
        with psycopg.connect(superuser, autocommit=True) as conn:
            conn.execute("vacuum analyze public.usage_logs, public.users")
        server_samples, server_table = _time(lambda: server_side(dsn, window), args.repeat)
        naive_samples, naive_table = _time(lambda: naive(dsn, window), args.repeat)
        plan = explain(superuser, window) if args.explain else []
    same = agree(server_table, naive_table)
    server_s, naive_s = statistics.median(server_samples), statistics.median(naive_samples)
    results |= {
        "server_seconds": [round(s, 3) for s in server_samples],
        "naive_seconds": [round(s, 3) for s in naive_samples],
        "server_median": round(server_s, 3),
        "naive_median": round(naive_s, 3),
        "ratio": round(naive_s / server_s, 1),
        "users_in_table": len(server_table),
        "tables_agree": same,
        "machine": f"{platform.machine()}, {platform.python_version()}",
    }
    print(
        f"seeded {seeded.usage_rows:,} usage rows ({seeded.messages:,} messages) in "
        f"{results['seed_seconds']}s\n"
        f"per-user report for {len(server_table):,} users over {args.days} days:\n"
        f"  server-side aggregation : median {server_s:6.2f}s  runs {results['server_seconds']}"
        f"  (target < {TARGET_SECONDS:.0f}s: {'met' if server_s < TARGET_SECONDS else 'MISSED'})\n"
        f"  every row into pandas   : median {naive_s:6.2f}s  runs {results['naive_seconds']}\n"
        f"  ratio                   : {results['ratio']}x faster server-side (target >= "
        f"{TARGET_RATIO:.0f}x: {'met' if naive_s / server_s >= TARGET_RATIO else 'MISSED'})\n"
        f"  tables agree exactly    : {same}"
    )
    for line in plan:
        print(line)
    if args.json:
        args.json.write_text(json.dumps(results | {"plan": plan}, indent=2) + "\n")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
