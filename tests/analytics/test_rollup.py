"""The daily usage rollup: kept current by every kind of write, private to its users, reconciled."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import psycopg
import pytest

from app.analytics.reconcile import reconcile
from app.db.migrate import apply_migrations
from tests.analytics.seeding import SPEC, seed
from tests.support.database import MIGRATIONS, FreshDatabase

DAY = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)


@pytest.fixture
def db(fresh_db: FreshDatabase) -> FreshDatabase:
    apply_migrations(fresh_db.dsn, MIGRATIONS)
    return fresh_db


def _user(conn: psycopg.Connection) -> str:
    user = str(uuid.uuid4())
    conn.execute(
        "insert into auth.users (id, email, aud, role) values (%s, %s, 'authenticated',"
        " 'authenticated')",
        (user, f"{user[:8]}@example.test"),
    )
    return user


def _insert(
    conn: psycopg.Connection, user: str, cost: str, *, status: str = "completed",
    model: str = "gpt-4o", at: datetime = DAY,
) -> None:  # fmt: skip
    conn.execute(
        "insert into public.usage_logs (user_id, provider, model, tokens_in, tokens_out,"
        " cache_read_tokens, cache_write_tokens, cost_usd, status, estimated, created_at)"
        " values (%s, 'openai', %s, 10, 20, 30, 0, %s, %s, %s, %s)",
        (user, model, Decimal(cost), status, status != "completed", at),
    )


def _rollup(conn: psycopg.Connection, user: str) -> list[tuple[object, ...]]:
    return conn.execute(
        "select day::text, model, status, requests, tokens_in, cache_read_tokens, cost_usd,"
        " estimated_requests from public.usage_daily where user_id = %s order by 2, 3",
        (user,),
    ).fetchall()


def test_rollup_single_inserts_add_up_per_day_model_and_status(db: FreshDatabase) -> None:
    with psycopg.connect(db.dsn) as conn:
        user = _user(conn)
        _insert(conn, user, "0.10000001")
        _insert(conn, user, "0.20000002")
        _insert(conn, user, "0.5", status="error")
        _insert(conn, user, "1", at=datetime(2026, 11, 10, 23, 59, 59, tzinfo=UTC))
        _insert(conn, user, "2", at=datetime(2026, 11, 11, 0, 0, tzinfo=UTC))

        rows = _rollup(conn, user)

    assert sorted(rows) == [
        ("2026-11-10", "gpt-4o", "completed", 3, 30, 90, Decimal("1.30000003"), 0),
        ("2026-11-10", "gpt-4o", "error", 1, 10, 30, Decimal("0.50000000"), 1),
        ("2026-11-11", "gpt-4o", "completed", 1, 10, 30, Decimal("2.00000000"), 0),
    ]
    assert reconcile(db.dsn).equal


def test_rollup_follows_deletes_updates_and_truncate(db: FreshDatabase) -> None:
    with psycopg.connect(db.dsn) as conn:
        user = _user(conn)
        for cost in ("1", "2", "3"):
            _insert(conn, user, cost)
        _insert(conn, user, "4", model="gpt-4o-mini")

        _insert(conn, user, "5", at=datetime(2026, 11, 10, 23, 0, tzinfo=UTC))
        conn.execute("delete from public.usage_logs where cost_usd in (2, 5)")
        conn.execute("update public.usage_logs set status = 'partial' where cost_usd = 3")
        conn.execute("delete from public.usage_logs where model = 'gpt-4o-mini'")
        after_writes = _rollup(conn, user)
        spans = conn.execute(
            "select status, first_at, last_at from public.usage_daily where user_id = %s", (user,)
        ).fetchall()
        conn.commit()
        assert reconcile(db.dsn).equal

        conn.execute("truncate public.usage_logs")
        after_truncate = conn.execute("select count(*) from public.usage_daily").fetchone()

    assert sorted(after_writes) == [
        ("2026-11-10", "gpt-4o", "completed", 1, 10, 30, Decimal("1.00000000"), 0),
        ("2026-11-10", "gpt-4o", "partial", 1, 10, 30, Decimal("3.00000000"), 0),
    ]
    assert after_truncate == (0,)
    assert sorted(spans) == [("completed", DAY, DAY), ("partial", DAY, DAY)]  # 23:00 is gone


def test_rollup_deleting_a_user_cascades_through_usage_into_the_rollup(db: FreshDatabase) -> None:
    with psycopg.connect(db.dsn) as conn:
        user, other = _user(conn), _user(conn)
        _insert(conn, user, "1")
        _insert(conn, other, "2")

        conn.execute("delete from auth.users where id = %s", (user,))

        assert _rollup(conn, user) == []
        assert len(_rollup(conn, other)) == 1
    assert reconcile(db.dsn).equal


def test_rollup_concurrent_inserts_of_the_same_key_lose_nothing(db: FreshDatabase) -> None:
    with psycopg.connect(db.dsn) as conn:
        user = _user(conn)
    workers, each = 4, 25
    start = threading.Barrier(workers)
    errors: list[BaseException] = []

    def insert_many() -> None:
        try:
            with psycopg.connect(db.dsn, autocommit=True) as conn:
                start.wait(timeout=30)
                for _ in range(each):
                    _insert(conn, user, "0.00000001")
        except (psycopg.Error, threading.BrokenBarrierError) as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=insert_many) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert not errors
    with psycopg.connect(db.dsn) as conn:
        rows = _rollup(conn, user)
    assert [(r[3], r[6]) for r in rows] == [(workers * each, Decimal("0.00000100"))]


def test_rollup_after_a_seeded_copy_in_replica_mode_reconciles_exactly(
    db: FreshDatabase,
) -> None:
    seeded = seed(db.dsn, SPEC)  # COPY, foreign-key triggers skipped in replica mode

    result = reconcile(db.dsn)

    assert result.equal, result.mismatches
    assert result.raw_rows == result.rollup_requests == seeded.usage_rows
    assert result.raw_cost_usd == result.rollup_cost_usd > 0


def test_reconcile_reports_a_rollup_that_drifted(db: FreshDatabase) -> None:
    with psycopg.connect(db.superuser_dsn) as conn:
        user = _user(conn)
        _insert(conn, user, "1")
        conn.execute("update public.usage_daily set cost_usd = cost_usd + 0.00000001")

    result = reconcile(db.dsn)

    assert not result.equal
    assert result.mismatches[0]["rollup_cost_usd"] - result.mismatches[0]["raw_cost_usd"] == (
        Decimal("0.00000001")
    )


def _as(conn: psycopg.Connection, role: str, sub: str) -> None:
    conn.execute(
        "select set_config('role', %s, true), set_config('request.jwt.claims', %s, true)",
        (role, json.dumps({"role": role, "sub": sub})),
    )


def test_rollup_users_read_their_own_rows_and_cannot_write_any(db: FreshDatabase) -> None:
    with psycopg.connect(db.dsn) as conn:
        user, other = _user(conn), _user(conn)
        _insert(conn, user, "1")
        _insert(conn, other, "2")
    with psycopg.connect(db.dsn.replace("postgres:", "authenticator:", 1)) as conn:
        _as(conn, "authenticated", user)
        seen = conn.execute("select user_id::text, cost_usd from public.usage_daily").fetchall()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("update public.usage_daily set cost_usd = 0 where user_id = %s", (user,))
        conn.rollback()
        _as(conn, "authenticated", user)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(
                "insert into public.usage_daily values (%s, '2026-11-10', 'x', 'y', 'completed',"
                " 1, 0, 0, 0, 0, 0, 0)",
                (user,),
            )

    assert seen == [(user, Decimal("1.00000000"))]


def test_analyst_functions_read_whole_days_from_the_rollup_and_edges_from_raw_rows(
    db: FreshDatabase,
) -> None:
    with psycopg.connect(db.superuser_dsn) as conn:
        user = _user(conn)
        _insert(conn, user, "1", at=datetime(2026, 11, 10, 9, 0, tzinfo=UTC))
        _insert(conn, user, "2", at=datetime(2026, 11, 11, 9, 0, tzinfo=UTC))
        # Tamper with the rollup only: whatever reads it shows the marker.
        conn.execute("update public.usage_daily set cost_usd = cost_usd + 100")

        def cost(since: str, until: str) -> Decimal:
            row = conn.execute(
                "select cost_usd from public.usage_per_user(%s, %s)", (since, until)
            ).fetchone()
            assert row is not None
            return Decimal(row[0])

        whole_days = cost("2026-11-10", "2026-11-12")
        edge_and_day = cost("2026-11-10T08:00Z", "2026-11-12")
        hours = cost("2026-11-10T08:00Z", "2026-11-10T10:00Z")

    assert whole_days == Decimal("203")  # both days from the rollup
    assert edge_and_day == Decimal("103")  # the 10th from raw rows (the window cuts it)
    assert hours == Decimal("1")  # no whole day inside: raw rows only
