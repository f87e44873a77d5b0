"""Per-user and per-day cost reports at 1M-10M usage rows: the rollup vs a raw scan vs pandas.

Three ways build the same two tables for the whole seeded window, side by side in one run:

- rollup: `app.analytics.load_per_user` / `load_per_day_model` (the SQL functions, which read
  `public.usage_daily` for whole UTC days) shaped by `costs.user_table` / `costs.daily_totals`;
- raw: the same aggregates as one GROUP BY over `public.usage_logs` (what the functions did
  before the rollup: a parallel scan that grows with the table);
- pandas: every usage row of the window streamed with COPY into a DataFrame (only the columns
  the tables need, cost as integer 1e-8 USD units so sums stay exact) and grouped in pandas.

It checks the rollup's and pandas' tables agree to the last decimal, and reconciles the rollup
with the raw rows (`app.analytics.reconcile`), then prints medians and ratios. The data lives
in a dedicated embedded PostgreSQL (never the dev database), seeded once by
`app.analytics.seed` as its superuser: with `--keep DIR` the seeded cluster stays in DIR and a
later run with the same counts reuses it instead of seeding again (10M rows took ~45 min on
two cores shared with other work). Not run in CI.

Example:
    nice .venv/bin/python bench/analytics.py --requests 1000000 --repeat 3
    nice .venv/bin/python bench/analytics.py --requests 10000000 --batches 5 \\
        --keep /var/tmp/bench-10m

Exit codes: 0 done (targets met or not: read the output); 1 the tables or the reconciliation
disagree; 2 usage error.
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import pandas as pd
import psycopg

from app.analytics import costs, load, sources
from app.analytics.reconcile import reconcile
from app.analytics.seed import SeedSpec
from app.analytics.seed_copy import seed_database
from app.config import Settings
from app.core.pricing import Pricer
from app.local.postgres import free_port
from app.local.stack import LocalStack

TARGET_SECONDS, TARGET_RATIO = 1.0, 20.0
_DOC = __doc__ or ""
_TOKENS = ("tokens_in", "tokens_out", "cache_read_tokens", "cache_write_tokens")
_SUMS = ", ".join(f"sum({c})::bigint as {c}" for c in _TOKENS)
RAW_PER_USER = f"""
select a.*, u.email from (
  select user_id, count(*) as requests, {_SUMS}, sum(cost_usd) as cost_usd,
    count(*) filter (where status = 'partial') as partial_requests,
    count(*) filter (where status = 'error') as error_requests,
    count(*) filter (where estimated) as estimated_requests,
    min(created_at) as first_active, max(created_at) as last_active
  from public.usage_logs where created_at >= %(since)s and created_at < %(until)s
  group by user_id) a left join public.users u on u.id = a.user_id
"""  # noqa: S608 - constants
RAW_PER_DAY = f"""
select (created_at at time zone 'UTC')::date as day, provider, model, count(*) as requests,
  {_SUMS}, sum(cost_usd) as cost_usd
from public.usage_logs where created_at >= %(since)s and created_at < %(until)s
group by 1, 2, 3
"""  # noqa: S608 - constants
PANDAS_COPY = """
copy (select user_id, (created_at at time zone 'UTC')::date as day, provider, model,
  tokens_in, tokens_out, cache_read_tokens, cache_write_tokens,
  (cost_usd * 100000000)::bigint as cost_units, status, estimated
  from public.usage_logs where created_at >= '{since}' and created_at < '{until}')
to stdout with (format csv)
"""
_PANDAS_NAMES = [
    "user_id", "day", "provider", "model", *_TOKENS, "cost_units", "status", "estimated",
]  # fmt: skip


@contextmanager
def dedicated_database(keep: Path | None) -> Iterator[LocalStack]:
    """A throwaway embedded PostgreSQL (or one kept in `keep`), bootstrapped and migrated."""
    with TemporaryDirectory(prefix="bench-analytics-") as tmp:
        folder = keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        settings = Settings(_env_file=None, local_stack_dir=folder)  # type: ignore[call-arg]
        stack = LocalStack(
            settings, stack_dir=folder, api_port=free_port(), db_port=free_port(), durable=False
        )
        stack.start_database()
        try:
            yield stack
        finally:
            stack.stop_database()


def _exact(units: pd.Series) -> pd.Series:
    return pd.Series([Decimal(int(u)).scaleb(-8) for u in units], index=units.index, dtype=object)


# --- rollup (the analyst functions) ----------------------------------------------------------
def rollup_per_user(dsn: str, window: load.Window) -> pd.DataFrame:
    return costs.user_table(load.load_per_user(sources.PostgresSource(dsn), window))


def rollup_per_day(dsn: str, window: load.Window) -> pd.DataFrame:
    return costs.daily_totals(load.load_per_day_model(sources.PostgresSource(dsn), window))


# --- raw scan --------------------------------------------------------------------------------
def _raw(dsn: str, query: str, window: load.Window) -> pd.DataFrame:
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(query, {"since": window.since, "until": window.until})
        names = [c.name for c in cur.description or []]
        return pd.DataFrame(cur.fetchall(), columns=names)


def raw_per_user(dsn: str, window: load.Window) -> pd.DataFrame:
    frame = _raw(dsn, RAW_PER_USER, window)
    frame["user_id"] = frame["user_id"].astype(str)
    return costs.user_table(frame)


def raw_per_day(dsn: str, window: load.Window) -> pd.DataFrame:
    frame = _raw(dsn, RAW_PER_DAY, window)
    frame["day"] = pd.to_datetime(frame["day"])
    return costs.daily_totals(frame)


# --- pandas over every row -------------------------------------------------------------------
def pandas_rows(dsn: str, window: load.Window) -> pd.DataFrame:
    """Every usage row of the window into a DataFrame, streamed with COPY (CSV)."""
    assert window.since
    assert window.until
    statement = PANDAS_COPY.format(since=window.since.isoformat(), until=window.until.isoformat())
    buffer = io.BytesIO()
    with psycopg.connect(dsn) as conn, conn.cursor() as cur, cur.copy(statement) as copy:
        for block in copy:
            buffer.write(block)
    buffer.seek(0)
    return pd.read_csv(buffer, names=_PANDAS_NAMES, parse_dates=["day"],
                       dtype={"status": "category", "provider": "category", "model": "category"},
                       true_values=["t"], false_values=["f"])  # fmt: skip


def pandas_per_user(dsn: str, window: load.Window) -> pd.DataFrame:
    frame = pandas_rows(dsn, window)
    with psycopg.connect(dsn) as conn:
        emails = {str(k): v for k, v in conn.execute("select id, email from public.users")}
    frame["partial"] = frame["status"] == "partial"
    frame["error"] = frame["status"] == "error"
    grouped = frame.groupby("user_id", sort=False).agg(
        requests=("status", "size"), **{c: (c, "sum") for c in _TOKENS},
        cost_units=("cost_units", "sum"), partial_requests=("partial", "sum"),
        error_requests=("error", "sum"), estimated_requests=("estimated", "sum"),
    )  # fmt: skip
    per_user = grouped.reset_index()
    per_user["cost_usd"] = _exact(per_user.pop("cost_units"))
    per_user.insert(1, "email", per_user["user_id"].map(emails))
    return costs.user_table(per_user)


def pandas_per_day(dsn: str, window: load.Window) -> pd.DataFrame:
    frame = pandas_rows(dsn, window)
    grouped = frame.groupby(["day", "provider", "model"], observed=True, as_index=False).agg(
        requests=("status", "size"), **{c: (c, "sum") for c in _TOKENS},
        cost_units=("cost_units", "sum"),
    )  # fmt: skip
    grouped["cost_usd"] = _exact(grouped.pop("cost_units"))
    return costs.daily_totals(grouped)


def _time(fn: Callable[[], pd.DataFrame], repeat: int) -> tuple[list[float], pd.DataFrame]:
    samples, result = [], pd.DataFrame()
    for _ in range(repeat):
        began = time.perf_counter()
        result = fn()
        samples.append(time.perf_counter() - began)
    return samples, result


def agree(a: pd.DataFrame, b: pd.DataFrame, key: str) -> bool:
    """Same keys with the same requests, tokens and exact costs."""
    columns = [key, "requests", *costs.TOKEN_COLUMNS, "cost_usd"]
    left = a[columns].sort_values(key, ignore_index=True).astype(str)
    right = b[columns].sort_values(key, ignore_index=True).astype(str)
    return bool(left.equals(right))


def _seeded_rows(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("select count(*) from public.usage_logs").fetchone()
    return int(row[0]) if row else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench/analytics.py",
        description=_DOC.split("\n\n")[0],
        epilog=_DOC.split("\n\n", 3)[3],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=5_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each way (median)")
    parser.add_argument("--pandas-repeat", type=int, default=1, help="timed pandas runs")
    parser.add_argument("--json", type=Path, help="also write the numbers as JSON here")
    parser.add_argument("--keep", type=Path, help="keep (and reuse) the seeded cluster here")
    parser.add_argument(
        "--batches", type=int, default=1,
        help="seed in this many batches (seeds seed..seed+n-1, users and rows split evenly): "
        "bounds the memory a 10M-row seed needs",
    )  # fmt: skip
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    if min(args.requests, args.users, args.days, args.repeat, args.pandas_repeat, args.batches) < 1:
        print("error: counts must be at least 1", file=sys.stderr)
        return 2

    spec = SeedSpec(args.users, args.days, args.requests, args.seed,
                    end=datetime(2026, 11, 20, tzinfo=UTC))  # fmt: skip
    window = load.Window(spec.start, spec.end)
    results: dict[str, Any] = {"requests": args.requests, "users": args.users, "days": args.days}
    timings: dict[str, dict[str, list[float]]] = {}
    with dedicated_database(args.keep) as stack:
        dsn, superuser = stack.ctx.db_url, stack.pg.superuser_dsn
        if _seeded_rows(superuser) == args.requests:
            print(f"reusing {args.requests:,} seeded usage rows in {args.keep}", flush=True)
            results["seed_seconds"] = None
        else:
            print(f"seeding {args.requests:,} usage rows into a dedicated database ...", flush=True)
            seconds = 0.0
            for batch in range(args.batches):
                part = SeedSpec(
                    args.users // args.batches, args.days, args.requests // args.batches,
                    args.seed + batch, end=spec.end,
                )  # fmt: skip
                seeded = seed_database(superuser, part, Pricer(stack.settings), replace=batch == 0)
                seconds += seeded.generate_seconds + seeded.load_seconds
                print(f"  batch {batch + 1}/{args.batches} seeded ({seconds:.0f}s)", flush=True)
            results["seed_seconds"] = round(seconds, 1)
            with psycopg.connect(superuser, autocommit=True) as conn:
                conn.execute("vacuum analyze public.usage_logs, public.usage_daily, public.users")
        with psycopg.connect(superuser) as conn:
            rollup_rows = conn.execute("select count(*) from public.usage_daily").fetchone()
        results["rollup_rows"] = int(rollup_rows[0]) if rollup_rows else 0
        tables: dict[str, dict[str, pd.DataFrame]] = {}
        for report, ways in (
            ("per_user", {"rollup": rollup_per_user, "raw": raw_per_user,
                          "pandas": pandas_per_user}),
            ("per_day", {"rollup": rollup_per_day, "raw": raw_per_day, "pandas": pandas_per_day}),
        ):  # fmt: skip
            timings[report], tables[report] = {}, {}
            for way, fn in ways.items():
                repeat = args.pandas_repeat if way == "pandas" else args.repeat
                samples, table = _time(lambda fn=fn: fn(dsn, window), repeat)  # type: ignore[misc]
                timings[report][way], tables[report][way] = samples, table
                print(f"  {report:8} {way:6}: {[round(s, 3) for s in samples]}", flush=True)
        began = time.perf_counter()
        reconciled = reconcile(superuser)
        reconcile_seconds = time.perf_counter() - began
    same = (
        agree(tables["per_user"]["rollup"], tables["per_user"]["pandas"], "user_id")
        and agree(tables["per_day"]["rollup"], tables["per_day"]["pandas"], "day")
        and agree(tables["per_user"]["rollup"], tables["per_user"]["raw"], "user_id")
    )
    lines = [
        f"{args.requests:,} usage rows, {results['rollup_rows']:,} rollup rows, "
        f"{args.users:,} users, {args.days} days "
        + (f"(seeded in {results['seed_seconds']}s)" if results["seed_seconds"] else "(reused)")
    ]
    for report in ("per_user", "per_day"):
        medians = {w: statistics.median(s) for w, s in timings[report].items()}
        ratio = medians["pandas"] / medians["rollup"]
        results[report] = {"runs": timings[report], "medians": medians, "ratio": ratio}
        met = medians["rollup"] < TARGET_SECONDS and ratio >= TARGET_RATIO
        lines.append(
            f"{report:8}: rollup {medians['rollup']:.3f}s  raw scan {medians['raw']:.3f}s  "
            f"pandas {medians['pandas']:.2f}s  -> {ratio:,.0f}x vs pandas, "
            f"{medians['raw'] / medians['rollup']:.1f}x vs raw "
            f"(target < {TARGET_SECONDS:.0f}s and >= {TARGET_RATIO:.0f}x: "
            f"{'met' if met else 'MISSED'})"
        )
    lines.append(f"tables agree exactly: {same}")
    lines.append(
        f"reconciliation: equal={reconciled.equal} raw {reconciled.raw_cost_usd:f} USD vs "
        f"rollup {reconciled.rollup_cost_usd:f} USD, {reconciled.raw_rows:,} rows vs "
        f"{reconciled.rollup_requests:,} requests ({reconcile_seconds:.1f}s)"
    )
    print("\n".join(lines))
    results |= {
        "tables_agree": same,
        "reconciled": reconciled.equal,
        "raw_cost_usd": f"{reconciled.raw_cost_usd:f}",
        "rollup_cost_usd": f"{reconciled.rollup_cost_usd:f}",
        "machine": f"{platform.machine()}, {platform.python_version()}",
    }
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return 0 if same and reconciled.equal else 1


if __name__ == "__main__":
    sys.exit(main())
