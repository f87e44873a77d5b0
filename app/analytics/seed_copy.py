"""Load a generated seed into PostgreSQL with COPY, fast enough for millions of rows.

pandas' `to_csv` spends ~20 µs a row on these frames, longer than the server takes to store it,
so the CSV text is built column by column with numpy (timestamps and digits as byte matrices)
and joined once per chunk. Everything runs in one transaction: a failed seed leaves nothing
behind. Nothing the migrations own is dropped or rebuilt; rows go through the real constraints
and indexes, and auth users through the `on_auth_user_created` trigger (which makes each
`public.users` profile). COPY as `postgres` (BYPASSRLS) or a superuser.

Foreign-key checks are row-by-row triggers, and they cost more than everything else together
(~70 µs a usage row with three foreign keys). When the role may set
`session_replication_role` (a superuser; on Supabase the `postgres` role through supautils)
the tables after `auth.users` are copied in `replica` mode, which skips those triggers, and
every foreign key is then checked once, set-wise, by an anti-join in the same transaction, so
the seed still cannot leave a dangling reference. Otherwise rows are checked one by one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import psycopg
from psycopg import sql
from psycopg.copy import QueuedLibpqWriter

from app.analytics.progress import progress_bar
from app.analytics.rates import DatedPricer
from app.analytics.seed import (
    Progress,
    SeedError,
    SeedFrames,
    SeedSpec,
    generate,
    model_rates,
)
from app.analytics.seed_guard import check_only_seeded_users, remove_seeded

CHUNK_ROWS = 25_000
# Columns holding free text (quoted in CSV); every other column is a uuid, number, flag,
# timestamp or a fixed word, which never needs quoting.
_FREE_TEXT = frozenset({"email", "raw_app_meta_data", "raw_user_meta_data", "title", "content"})
_TABLES = (
    ("auth", "users", "users"),
    ("public", "conversations", "conversations"),
    ("public", "messages", "messages"),
    ("public", "usage_logs", "usage"),
)


# (table, column, referenced table): the foreign keys of the seeded tables.
_REFERENCES = (
    ("public.conversations", "user_id", "public.users"),
    ("public.messages", "conversation_id", "public.conversations"),
    ("public.messages", "user_id", "public.users"),
    ("public.usage_logs", "user_id", "public.users"),
    ("public.usage_logs", "conversation_id", "public.conversations"),
    ("public.usage_logs", "message_id", "public.messages"),
)


@dataclass(frozen=True)
class SeedResult:
    users: int
    conversations: int
    messages: int
    usage_rows: int
    generate_seconds: float
    load_seconds: float
    set_wise_checks: bool  # foreign keys checked by anti-joins (replica mode), not row by row


def _digits(values: np.ndarray, width: int) -> np.ndarray:
    """(n, width) zero-padded ASCII digits of non-negative integers."""
    out = np.empty((values.size, width), dtype=np.uint8)
    rest = values.astype(np.int64)
    for i in range(width - 1, -1, -1):
        rest, digit = np.divmod(rest, 10)
        out[:, i] = digit + ord("0")
    return out


def _const(text: str, n: int) -> np.ndarray:
    return np.tile(np.frombuffer(text.encode(), dtype=np.uint8), (n, 1))


def iso_timestamps(micros: np.ndarray) -> np.ndarray:
    """Microseconds since the epoch as 'YYYY-MM-DD HH:MM:SS.ffffff+00' strings, vectorised."""
    days, in_day = np.divmod(micros.astype(np.int64), 86_400_000_000)
    unique_days, which = np.unique(days, return_inverse=True)
    day_text = np.datetime_as_string(unique_days.astype("datetime64[D]")).astype("S10")
    date = np.frombuffer(day_text.tobytes(), dtype=np.uint8).reshape(-1, 10)[which]
    seconds, micro = np.divmod(in_day, 1_000_000)
    hour, second_of_hour = np.divmod(seconds, 3600)
    minute, second = np.divmod(second_of_hour, 60)
    n = micros.size
    parts = (
        date, _const(" ", n), _digits(hour, 2), _const(":", n), _digits(minute, 2),
        _const(":", n), _digits(second, 2), _const(".", n), _digits(micro, 6), _const("+00", n),
    )  # fmt: skip
    chars = np.ascontiguousarray(np.hstack(parts))
    return chars.view("S29").ravel().astype(str)


def _csv_column(name: str, column: pd.Series) -> list[str]:
    """One column as CSV fields; an empty unquoted field is NULL in PostgreSQL's CSV format."""
    fields: list[str]
    if isinstance(column.dtype, pd.DatetimeTZDtype):
        micros = column.dt.tz_convert("UTC").dt.as_unit("us").array.asi8
        fields = iso_timestamps(micros).tolist()
        return fields
    if pd.api.types.is_bool_dtype(column.dtype):
        fields = np.where(column.to_numpy(), "t", "f").tolist()
        return fields
    if isinstance(column.dtype, pd.Int64Dtype):
        text = column.fillna(0).to_numpy(dtype=np.int64).astype(str)
        fields = np.where(column.isna().to_numpy(), "", text).tolist()
        return fields
    if pd.api.types.is_integer_dtype(column.dtype):
        return list(map(str, column.tolist()))
    values = [
        "" if v is None or v is pd.NA or v != v else str(v) for v in column.tolist()
    ]  # v != v: NaN
    if name in _FREE_TEXT:
        return ['"' + v.replace('"', '""') + '"' for v in values]
    return values


def csv_text(frame: pd.DataFrame) -> str:
    """The frame's rows as PostgreSQL CSV (no header), in column order."""
    if frame.empty:
        return ""
    columns = [_csv_column(str(name), frame[name]) for name in frame.columns]
    return "\n".join(map(",".join, zip(*columns, strict=True))) + "\n"


def _skip_row_triggers(conn: psycopg.Connection) -> bool:
    """Switch the rest of the transaction to replica mode, if this role may; say whether it did."""
    try:
        with conn.transaction():  # a savepoint: a refusal leaves the transaction usable
            conn.execute("set local session_replication_role = replica")
    except psycopg.errors.InsufficientPrivilege:
        return False
    return True


def _check_references(conn: psycopg.Connection) -> None:
    """Every foreign key of the seeded tables, checked set-wise (replica mode skipped them)."""
    conn.execute("set local session_replication_role = origin")
    for table, column, target in _REFERENCES:
        schema, name = table.split(".")
        target_schema, target_name = target.split(".")
        query = sql.SQL(
            "select count(*) from {}.{} t where t.{} is not null"
            " and not exists (select 1 from {}.{} r where r.id = t.{})"
        ).format(
            sql.Identifier(schema), sql.Identifier(name), sql.Identifier(column),
            sql.Identifier(target_schema), sql.Identifier(target_name), sql.Identifier(column),
        )  # fmt: skip
        row = conn.execute(query).fetchone()
        if row and row[0]:
            raise SeedError(f"{row[0]} rows of {table}.{column} reference no {target} row")


def write(
    conn: psycopg.Connection,
    frames: SeedFrames,
    progress: Progress | None = None,
    *,
    bars: bool = False,
) -> bool:
    """COPY every table in the caller's transaction; True when foreign keys were checked set-wise.

    Users go first and with triggers on: `on_auth_user_created` makes their profiles. With
    `bars`, each table's copy shows a progress bar (rows, rate, ETA) on a terminal.
    """
    set_wise = False
    for schema, table, attr in _TABLES:
        frame: pd.DataFrame = getattr(frames, attr)
        if (schema, table) == ("public", "conversations"):
            set_wise = _skip_row_triggers(conn)
        if progress:
            progress(f"copying {len(frame):,} rows into {schema}.{table}")
        statement = sql.SQL("copy {}.{} ({}) from stdin with (format csv)").format(
            sql.Identifier(schema),
            sql.Identifier(table),
            sql.SQL(", ").join(sql.Identifier(str(c)) for c in frame.columns),
        )
        # A writer thread sends while this one formats the next chunk (the server works meanwhile).
        bar = progress_bar(len(frame), f"{schema}.{table}", unit="row", quiet=not bars)
        with conn.cursor() as cur, cur.copy(statement, writer=QueuedLibpqWriter(cur)) as pipe:
            for begin in range(0, len(frame), CHUNK_ROWS):
                chunk = frame.iloc[begin : begin + CHUNK_ROWS]
                pipe.write(csv_text(chunk))
                bar.update(len(chunk))
        bar.close()
    if set_wise:
        if progress:
            progress("checking foreign keys")
        _check_references(conn)
    return set_wise


def seed_database(
    dsn: str,
    spec: SeedSpec,
    pricer: DatedPricer,
    *,
    replace: bool = False,
    real_users_ok: bool = False,
    progress: Progress | None = None,
    bars: bool = False,
) -> SeedResult:
    """Generate a seed and load it in one transaction; `replace` first removes the rows earlier
    seeds loaded (`seed_guard.remove_seeded`: nobody else's).

    A database holding users the seed did not make is refused (`SeedRefused`) unless
    `real_users_ok` (the local stack, where developers sign up). `bars`: progress bars for the
    copies (on a terminal only, see `app.analytics.progress`).
    """
    began = time.perf_counter()
    if progress:
        progress(f"generating {spec.requests:,} requests for {spec.users:,} users")
    frames = generate(spec, model_rates(pricer, spec))
    generated = time.perf_counter()
    with psycopg.connect(dsn) as conn:
        if not real_users_ok:
            check_only_seeded_users(conn)
        if replace:
            remove_seeded(conn)
        try:
            set_wise = write(conn, frames, progress, bars=bars)
        except psycopg.errors.UniqueViolation as exc:
            raise SeedError(
                f"seed {spec.seed} is already loaded in this database; "
                "pass --truncate or another --seed"
            ) from exc
    return SeedResult(
        users=len(frames.users),
        conversations=len(frames.conversations),
        messages=len(frames.messages),
        usage_rows=len(frames.usage),
        generate_seconds=generated - began,
        load_seconds=time.perf_counter() - generated,
        set_wise_checks=set_wise,
    )
