"""The aggregate SQL functions and the report built on them, against seeded PostgreSQL.

The report's numbers are checked against independent SQL over `usage_logs`; RLS-awareness is
checked as the real roles (`set local role` + `request.jwt.claims`, exactly as PostgREST does).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal

import psycopg
import pytest

from app.analytics import report, sources
from tests.analytics.seeding import SPEC
from tests.support.database import FreshDatabase

FUNCTIONS = {
    "usage_per_user": "p_since => %(since)s, p_until => %(until)s",
    "usage_per_day_model": "p_since => %(since)s, p_until => %(until)s",
    "cost_per_conversation": "p_since => %(since)s, p_until => %(until)s",
    "conversation_cost_summary": "p_since => %(since)s, p_until => %(until)s",
    "usage_user_days": "p_since => %(since)s, p_until => %(until)s",
}
# A window that cuts through the seeded days (not aligned with them).
SINCE = datetime(2026, 11, 3, 12, 30, tzinfo=UTC)
UNTIL = datetime(2026, 11, 17, 6, 0, tzinfo=UTC)
CENT = Decimal("0.01")


def _cents(amount: Decimal) -> Decimal:
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def _independent_sums(dsn: str, since: datetime, until: datetime) -> dict[str, Decimal]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "select user_id::text, sum(cost_usd) from public.usage_logs"
            " where created_at >= %s and created_at < %s group by user_id",
            (since, until),
        ).fetchall()
    return dict(rows)


def test_report_per_user_and_total_costs_equal_independent_sql_sums(
    seeded_db: FreshDatabase,
) -> None:
    assert SPEC.start < SINCE < UNTIL < SPEC.end  # the window cuts through the seeded days
    options = report.ReportOptions(since=SINCE, until=UNTIL)

    built = report.build_report(sources.PostgresSource(seeded_db.dsn), options)

    expected = _independent_sums(seeded_db.dsn, SINCE, UNTIL)
    exact = built.exact["users"]
    got = dict(zip(exact["user_id"], exact["cost_usd"], strict=True))
    assert len(got) == len(expected) > 10
    assert {u: _cents(c) for u, c in got.items()} == {u: _cents(c) for u, c in expected.items()}
    assert got == expected  # in fact exact, not only to the cent
    assert built.totals["cost_usd"] == sum(expected.values())
    with psycopg.connect(seeded_db.dsn) as conn:
        row = conn.execute(
            "select count(distinct model), sum(cache_read_tokens), sum(cache_write_tokens)"
            " from public.usage_logs where created_at >= %s and created_at < %s",
            (SINCE, UNTIL),
        ).fetchone()
    assert row is not None and row[0] == 5 and row[1] > 0 and row[2] > 0  # the data is varied
    assert built.totals["cache_read_tokens"] == row[1]
    assert built.totals["cache_write_tokens"] == row[2]


def test_report_tables_add_up_to_the_same_total(seeded_db: FreshDatabase) -> None:
    built = report.build_report(
        sources.PostgresSource(seeded_db.dsn), report.ReportOptions(since=SINCE, until=UNTIL)
    )
    total = built.totals["cost_usd"]

    assert sum(built.exact["models"]["cost_usd"]) == total
    assert sum(built.exact["daily"]["cost_usd"]) == total
    assert built.daily["cost_usd"].sum() == pytest.approx(float(total))  # floats for pandas
    wide = built.exact["daily_by_model"].set_index("day")
    assert sum(sum(wide[m]) for m in wide.columns) == total
    assert built.conversation_summary.loc[0, "cost_usd"] <= total  # rows without one are out
    assert built.top_users["cost_usd"].tolist() == sorted(built.top_users["cost_usd"], reverse=True)


def test_report_for_one_user_matches_that_users_rows(seeded_db: FreshDatabase) -> None:
    expected = _independent_sums(seeded_db.dsn, SINCE, UNTIL)
    user = max(expected, key=lambda u: expected[u])

    built = report.build_report(
        sources.PostgresSource(seeded_db.dsn),
        report.ReportOptions(since=SINCE, until=UNTIL, user_id=user),
    )

    assert built.users["user_id"].tolist() == [user]
    assert built.totals["cost_usd"] == expected[user]
    assert set(built.projection["user_id"]) == {user}


def test_functions_are_invoker_stable_and_pin_an_empty_search_path(
    seeded_db: FreshDatabase,
) -> None:
    with psycopg.connect(seeded_db.dsn) as conn:
        rows = conn.execute(
            "select p.proname, p.prosecdef, p.provolatile, p.proconfig"
            " from pg_proc p join pg_namespace n on n.oid = p.pronamespace"
            " where n.nspname = 'public' and p.proname = any(%s)",
            (list(FUNCTIONS),),
        ).fetchall()

    assert {r[0] for r in rows} == set(FUNCTIONS)
    for name, definer, volatility, config in rows:
        assert (definer, volatility) == (False, "s"), name
        assert 'search_path=""' in config, name


# --- as the API roles ----------------------------------------------------------------------------
@pytest.fixture
def as_role(seeded_db: FreshDatabase) -> Iterator[psycopg.Connection]:
    """A connection as `authenticator`, in a transaction, ready to `set local role`."""
    with psycopg.connect(seeded_db.dsn.replace("postgres:", "authenticator:", 1)) as conn:
        yield conn
        conn.rollback()


def _become(conn: psycopg.Connection, role: str, sub: str | None = None) -> None:
    claims = {"role": role} | ({"sub": sub} if sub else {})
    conn.execute(
        "select set_config('role', %s, true), set_config('request.jwt.claims', %s, true)",
        (role, json.dumps(claims)),
    )


def _call(conn: psycopg.Connection, function: str, columns: str) -> list[tuple[object, ...]]:
    query = f"select {columns} from public.{function}({FUNCTIONS[function]})"
    return conn.execute(query, {"since": SINCE, "until": UNTIL}).fetchall()


def test_functions_as_a_user_see_only_that_users_rows(
    seeded_db: FreshDatabase, as_role: psycopg.Connection
) -> None:
    expected = _independent_sums(seeded_db.dsn, SINCE, UNTIL)
    user = sorted(expected)[len(expected) // 2]
    _become(as_role, "authenticated", user)

    per_user = _call(as_role, "usage_per_user", "user_id::text, cost_usd")
    days = _call(as_role, "usage_user_days", "user_id::text, cost_usd")
    conversations = _call(as_role, "cost_per_conversation", "user_id::text, cost_usd")
    per_day_model = _call(as_role, "usage_per_day_model", "cost_usd")
    summary = _call(as_role, "conversation_cost_summary", "cost_usd")

    assert per_user == [(user, expected[user])]
    assert {r[0] for r in days} == {r[0] for r in conversations} == {user}
    assert sum(r[1] for r in days) == expected[user]
    assert sum(r[0] for r in per_day_model) == expected[user]
    assert summary[0][0] <= expected[user]


def test_functions_as_a_user_asking_for_someone_else_get_nothing(
    seeded_db: FreshDatabase, as_role: psycopg.Connection
) -> None:
    users = sorted(_independent_sums(seeded_db.dsn, SINCE, UNTIL))
    _become(as_role, "authenticated", users[0])

    rows = as_role.execute(
        "select * from public.usage_per_user(%s, %s, %s)", (SINCE, UNTIL, users[1])
    ).fetchall()

    assert rows == []


def test_functions_as_the_service_role_see_every_user(
    seeded_db: FreshDatabase, as_role: psycopg.Connection
) -> None:
    expected = _independent_sums(seeded_db.dsn, SINCE, UNTIL)
    _become(as_role, "service_role")

    per_user = _call(as_role, "usage_per_user", "user_id::text, cost_usd")
    per_day_model = _call(as_role, "usage_per_day_model", "cost_usd")

    assert dict(per_user) == expected
    assert sum(r[0] for r in per_day_model) == sum(expected.values())


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_functions_refuse_the_anon_role(as_role: psycopg.Connection, function: str) -> None:
    _become(as_role, "anon")

    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        _call(as_role, function, "*")
