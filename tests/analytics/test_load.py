"""Sources: psycopg and Supabase's API (the local PostgREST stand-in over real HTTP) agree."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal

import pandas as pd
import psycopg
import pytest

from app.analytics import load, report, sources
from app.local.context import StackContext
from app.local.postgres import free_port
from app.local.server import ServerThread
from app.local.stack import LocalStack, build_app
from tests.analytics.seeding import SPEC, migrate_and_seed
from tests.support.database import FreshDatabase

WINDOW = load.Window(datetime(2026, 11, 3, 12, 30, tzinfo=UTC), SPEC.end)


def test_to_frame_types_rows_from_either_source_alike() -> None:
    user = uuid.uuid4()
    from_psycopg = [{"user_id": user, "day": date(2026, 11, 2), "requests": 3, "tokens_in": 10,
                     "tokens_out": 5, "cost_usd": Decimal("0.00000000")}]  # fmt: skip
    from_http = [{"user_id": str(user), "day": "2026-11-02", "requests": 3, "tokens_in": 10,
                  "tokens_out": 5, "cost_usd": "0.00000000"}]  # fmt: skip

    a = load.to_frame(load.USER_DAYS, from_psycopg)
    b = load.to_frame(load.USER_DAYS, from_http)

    pd.testing.assert_frame_equal(a, b)
    assert a.loc[0, "user_id"] == str(user)
    assert a.loc[0, "day"] == pd.Timestamp("2026-11-02")
    assert isinstance(a.loc[0, "cost_usd"], Decimal)


def test_to_frame_of_no_rows_has_the_typed_columns() -> None:
    frame = load.to_frame(load.PER_USER, [])

    assert list(frame.columns) == list(load.PER_USER.columns)
    assert frame["requests"].dtype == "int64"
    assert str(frame["first_active"].dtype).startswith("datetime64")


@pytest.mark.parametrize(
    ("since", "until"),
    [(datetime(2026, 11, 1), None),  # naive
     (datetime(2026, 11, 2, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC))],  # backwards
)  # fmt: skip
def test_window_refuses_naive_or_backwards_bounds(since: datetime, until: datetime | None) -> None:
    with pytest.raises(ValueError, match="window bounds|before"):
        load.Window(since, until)


def test_postgres_source_with_nothing_listening_is_unreachable() -> None:
    source = sources.PostgresSource(f"postgresql://postgres:x@127.0.0.1:{free_port()}/postgres")

    with pytest.raises(sources.SourceUnreachable, match="cannot reach"):
        load.load_per_user(source, WINDOW)


def test_postgres_source_before_the_migration_says_functions_are_missing(
    fresh_db: FreshDatabase,
) -> None:
    with pytest.raises(sources.FunctionsMissing, match="apply supabase/migrations"):
        load.load_per_user(sources.PostgresSource(fresh_db.dsn), WINDOW)


def test_postgres_source_repr_hides_the_password(seeded_db: FreshDatabase) -> None:
    assert "postgres@" not in repr(sources.PostgresSource(seeded_db.dsn))


# --- Supabase: supabase-py .rpc() through the PostgREST stand-in ---------------------------------
@pytest.fixture(scope="module")
def rest_server(local_stack: LocalStack, seeded_db: FreshDatabase) -> Iterator[ServerThread]:
    """The local gateway (/rest/v1 etc.) served over HTTP in front of the seeded database."""
    port = free_port()
    ctx = StackContext(
        keys=local_stack.keys,
        api_url=f"http://127.0.0.1:{port}",
        db_port=local_stack.db_port,
        db_name=seeded_db.name,
    )
    with ServerThread(build_app(ctx), port) as server:
        yield server


@pytest.fixture(params=["secret_key", "service_role_key"])
def service(
    request: pytest.FixtureRequest, rest_server: ServerThread, local_stack: LocalStack
) -> Iterator[sources.SupabaseSource]:
    """supabase-py with the 2026 secret key or the legacy service role key, closed after."""
    key = getattr(local_stack.keys, request.param)
    with sources.SupabaseSource(rest_server.url, key) as source:
        yield source


@pytest.mark.parametrize(
    "aggregate",
    [load.PER_USER, load.PER_DAY_MODEL, load.USER_DAYS, load.CONVERSATION_SUMMARY],
    ids=lambda a: a.function,
)
def test_supabase_source_with_service_key_equals_postgres_source(
    service: sources.SupabaseSource, seeded_db: FreshDatabase, aggregate: sources.Aggregate
) -> None:
    over_http = load.load(service, aggregate, WINDOW)

    direct = load.load(sources.PostgresSource(seeded_db.dsn), aggregate, WINDOW)
    assert len(direct) > 0
    pd.testing.assert_frame_equal(over_http, direct)


def test_supabase_source_pages_through_max_rows_in_key_order(
    rest_server: ServerThread, local_stack: LocalStack, seeded_db: FreshDatabase
) -> None:
    with sources.SupabaseSource(
        rest_server.url, local_stack.keys.service_role_key, page_size=7
    ) as supabase:
        paged = load.load_user_days(supabase, WINDOW)

    direct = load.load_user_days(sources.PostgresSource(seeded_db.dsn), WINDOW)
    assert len(direct) > 3 * 7
    pd.testing.assert_frame_equal(paged, direct)


def test_supabase_source_top_conversations_come_most_expensive_first(
    service: sources.SupabaseSource, seeded_db: FreshDatabase
) -> None:
    top = load.load_top_conversations(service, WINDOW, limit=5)

    direct = load.load_top_conversations(sources.PostgresSource(seeded_db.dsn), WINDOW, limit=5)
    pd.testing.assert_frame_equal(top, direct)
    assert top["cost_usd"].tolist() == sorted(top["cost_usd"], reverse=True)


def test_supabase_source_with_the_anon_key_is_refused(
    rest_server: ServerThread, local_stack: LocalStack
) -> None:
    with (
        sources.SupabaseSource(rest_server.url, local_stack.keys.anon_key) as anon,
        pytest.raises(sources.SourceError, match="refused"),
    ):
        load.load_per_user(anon, WINDOW)


def test_supabase_source_with_nothing_listening_is_unreachable(
    local_stack: LocalStack,
) -> None:
    with (
        sources.SupabaseSource(
            f"http://127.0.0.1:{free_port()}", local_stack.keys.service_role_key
        ) as nowhere,
        pytest.raises(sources.SourceUnreachable),
    ):
        load.load_per_user(nowhere, WINDOW)


# --- per-user budget overrides (public.user_limits, from the guards migration) -------------------
@pytest.fixture
def with_limits(local_stack: LocalStack, fresh_db: FreshDatabase) -> Iterator[ServerThread]:
    """A small seed with one user's override, served by the gateway."""
    migrate_and_seed(fresh_db, dataclasses.replace(SPEC, requests=300))
    with psycopg.connect(fresh_db.dsn) as conn:
        conn.execute(
            "insert into public.user_limits (user_id, daily_budget_usd)"
            " select id, 0.000001 from public.users order by id limit 1"
        )
    port = free_port()
    ctx = StackContext(
        keys=local_stack.keys,
        api_url=f"http://127.0.0.1:{port}",
        db_port=local_stack.db_port,
        db_name=fresh_db.name,
    )
    with ServerThread(build_app(ctx), port) as server:
        yield server


def test_budget_limits_load_alike_from_both_sources_and_drive_breaches(
    with_limits: ServerThread, local_stack: LocalStack, fresh_db: FreshDatabase
) -> None:
    direct = sources.PostgresSource(fresh_db.dsn)
    with sources.SupabaseSource(with_limits.url, local_stack.keys.service_role_key) as service:
        over_http = load.load_budget_limits(service, exact=True)
    limits = load.load_budget_limits(direct, exact=True)

    pd.testing.assert_frame_equal(over_http, limits)
    assert limits["daily_budget_usd"].tolist() == [Decimal("0.000001")]
    assert limits["monthly_budget_usd"].isna().all()
    built = report.build_report(direct, report.ReportOptions(since=SPEC.start, until=SPEC.end))
    # No default budgets: only the user with an override can be over one.
    assert set(built.budget_breaches["user_id"]) == set(limits["user_id"])
    assert set(built.exact["budget_breaches"]["budget_usd"]) == {Decimal("0.000001")}
    assert set(built.budget_breaches["budget_usd"]) == {0.000001}  # float for pandas


def test_budget_limits_without_the_guards_table_are_empty(fresh_db: FreshDatabase) -> None:
    limits = load.load_budget_limits(sources.PostgresSource(fresh_db.dsn))

    assert limits.empty and list(limits.columns) == list(load.BUDGET_LIMITS.columns)
