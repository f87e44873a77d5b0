"""The seed: deterministic, realistic in shape, priced by the project's Pricer, loaded with COPY."""

from __future__ import annotations

import dataclasses
import io
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np
import pandas as pd
import psycopg
import pytest

from app.analytics import seed
from app.analytics.rates import ModelRates, RatesError, cost_units, format_units
from app.analytics.seed_copy import csv_text, iso_timestamps, seed_database
from app.core.domain import Price, Usage
from app.core.pricing import Pricer
from tests.analytics.seeding import SPEC, migrate_and_seed
from tests.support.database import FreshDatabase, make_settings


@pytest.fixture(scope="module")
def rates() -> list[ModelRates]:
    return seed.model_rates(Pricer(make_settings()), SPEC)


@pytest.fixture(scope="module")
def frames(rates: list[ModelRates]) -> seed.SeedFrames:
    return seed.generate(SPEC, rates)


def test_generate_same_seed_gives_identical_rows(
    rates: list[ModelRates], frames: seed.SeedFrames
) -> None:
    again = seed.generate(SPEC, rates)

    for name in ("users", "conversations", "messages", "usage"):
        pd.testing.assert_frame_equal(getattr(frames, name), getattr(again, name))


def test_generate_other_seed_gives_other_rows(
    rates: list[ModelRates], frames: seed.SeedFrames
) -> None:
    other = seed.generate(dataclasses.replace(SPEC, seed=SPEC.seed + 1), rates)

    assert set(other.users["id"]).isdisjoint(frames.users["id"])
    assert other.usage["cost_usd"].tolist() != frames.usage["cost_usd"].tolist()


def test_generate_makes_heavy_tailed_users_inside_the_window(frames: seed.SeedFrames) -> None:
    usage = frames.usage
    per_user = usage.groupby("user_id").size().sort_values(ascending=False)

    assert len(usage) == SPEC.requests
    assert per_user.head(len(per_user) // 10).sum() > 0.3 * SPEC.requests  # top 10 % > 30 %
    assert usage["created_at"].min() >= pd.Timestamp(SPEC.start)
    assert usage["created_at"].max() < pd.Timestamp(SPEC.end)


def test_generate_mixes_models_cache_tokens_and_outcomes(frames: seed.SeedFrames) -> None:
    usage = frames.usage
    anthropic = usage[usage["provider"] == "anthropic"]
    openai = usage[usage["provider"] == "openai"]

    assert set(usage["model"]) == {m.model for m in seed.MODELS}
    assert (anthropic["cache_read_tokens"] > 0).any() and (
        anthropic["cache_write_tokens"] > 0
    ).any()
    assert (openai["cache_read_tokens"] > 0).any()
    assert (openai["cache_write_tokens"] == 0).all()  # OpenAI bills no cache writes
    assert (openai.loc[openai["cache_read_tokens"] > 0, "cache_read_tokens"] % 128 == 0).all()
    assert set(usage["status"]) == {"completed", "partial", "error"}
    assert (usage["estimated"] == (usage["status"] != "completed")).all()
    replies = usage["message_id"].notna()
    assert (replies == (usage["tokens_out"] > 0)).all()  # no assistant message without output


def test_generate_links_rows_consistently(frames: seed.SeedFrames) -> None:
    users = set(frames.users["id"])
    conversations = frames.conversations.set_index("id")["user_id"]
    message_ids = set(frames.messages["id"])

    assert set(frames.conversations["user_id"]) <= users
    assert (frames.usage["conversation_id"].map(conversations) == frames.usage["user_id"]).all()
    assert set(frames.usage["message_id"].dropna()) <= message_ids
    assert len(frames.messages) == SPEC.requests + frames.usage["message_id"].notna().sum()


class _TieredPricer:
    """Prices input above 5,000 tokens at double rate (like a long-context tier)."""

    def price(
        self, provider: str, model: str, usage: Usage, *, when: datetime | None = None
    ) -> Price:
        rate = Decimal("0.000006") if usage.prompt_tokens > 5_000 else Decimal("0.000003")
        return Price(usage.prompt_tokens * rate + usage.output_tokens * rate, "test")


def test_derive_rates_refuses_prices_that_are_not_linear() -> None:
    with pytest.raises(RatesError, match="not linear"):
        seed.model_rates(_TieredPricer(), SPEC)


def test_cost_units_round_half_up_to_eight_places() -> None:
    # gpt-4o-mini cache reads cost 0.075 USD per million tokens: 7.5e-8 USD a token.
    rate = ModelRates("openai", "m", "test", 0, 0, 75, 0, scale=9)
    one = np.array([1])
    zero = np.array([0])

    assert cost_units(rate, zero, zero, one, zero).tolist() == [8]  # 7.5e-8 -> 8e-8
    assert cost_units(rate, zero, zero, one * 2, zero).tolist() == [15]
    assert format_units(np.array([0, 8, 123456789012])) == [
        "0.00000000", "0.00000008", "1234.56789012",
    ]  # fmt: skip


def test_iso_timestamps_match_python_formatting() -> None:
    moments = [
        datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2026, 11, 20, 0, 0, tzinfo=UTC),
        datetime(2028, 2, 29, 7, 5, 3, 40, tzinfo=UTC),
    ]
    micros = np.array([int(m.timestamp()) * 1_000_000 + m.microsecond for m in moments])

    assert iso_timestamps(micros).tolist() == [
        m.strftime("%Y-%m-%d %H:%M:%S.%f+00") for m in moments
    ]


def test_csv_text_quotes_free_text_and_writes_nulls_as_empty() -> None:
    frame = pd.DataFrame({
        "content": ['say "hi", then go', "plain"],
        "message_id": pd.Series([None, "abc"], dtype=object),
        "estimated": [True, False],
        "ttft_ms": pd.array([None, 5], dtype="Int64"),
    })  # fmt: skip

    parsed = pd.read_csv(io.StringIO(csv_text(frame)), header=None, keep_default_na=False)

    assert csv_text(frame).splitlines()[0] == '"say ""hi"", then go",,t,'
    assert parsed[0].tolist() == ['say "hi", then go', "plain"]


# --- into PostgreSQL -----------------------------------------------------------------------------
def _one(dsn: str, query: str) -> object:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(query).fetchone()
    assert row is not None
    return row[0]


def test_seed_database_as_postgres_loads_every_row_and_makes_profiles(
    fresh_db: FreshDatabase, frames: seed.SeedFrames
) -> None:
    result = migrate_and_seed(fresh_db)

    assert not result.set_wise_checks  # postgres may not skip triggers here: checked row by row
    assert (result.users, result.usage_rows) == (SPEC.users, SPEC.requests)
    assert _one(fresh_db.dsn, "select count(*) from public.usage_logs") == SPEC.requests
    assert _one(fresh_db.dsn, "select count(*) from public.messages") == len(frames.messages)
    assert _one(fresh_db.dsn, "select count(*) from public.users") == SPEC.users  # the trigger
    total = _one(fresh_db.dsn, "select sum(cost_usd) from public.usage_logs")
    assert total == sum(map(Decimal, frames.usage["cost_usd"]))


def test_seed_database_as_superuser_checks_foreign_keys_set_wise(
    fresh_db: FreshDatabase,
) -> None:
    migrate_and_seed(fresh_db, dataclasses.replace(SPEC, requests=500))  # tables exist
    spec = dataclasses.replace(SPEC, requests=500, seed=99)

    result = seed_database(fresh_db.superuser_dsn, spec, Pricer(make_settings()))

    assert result.set_wise_checks
    dangling = _one(
        fresh_db.dsn,
        "select count(*) from public.usage_logs l where not exists"
        " (select 1 from public.messages m where m.id = l.message_id) and l.message_id is not null",
    )
    assert dangling == 0
    assert _one(fresh_db.dsn, "select count(*) from public.users") == 2 * SPEC.users


def test_seed_database_twice_refuses_then_truncate_replaces(fresh_db: FreshDatabase) -> None:
    small = dataclasses.replace(SPEC, requests=300)
    migrate_and_seed(fresh_db, small)

    with pytest.raises(seed.SeedError, match="already loaded"):
        seed_database(fresh_db.dsn, small, Pricer(make_settings()))
    seed_database(fresh_db.dsn, small, Pricer(make_settings()), replace=True)

    assert _one(fresh_db.dsn, "select count(*) from public.usage_logs") == 300
    assert _one(fresh_db.dsn, "select count(*) from auth.users") == SPEC.users


def test_seeded_costs_equal_the_pricer_for_a_sample_of_rows(seeded_db: FreshDatabase) -> None:
    pricer = Pricer(make_settings())
    with psycopg.connect(seeded_db.dsn) as conn:
        rows = conn.execute(
            "select provider, model, tokens_in, tokens_out, cache_read_tokens,"
            " cache_write_tokens, cost_usd, created_at, price_source"
            " from public.usage_logs order by id limit 400"
        ).fetchall()
    assert {r[1] for r in rows} == {m.model for m in seed.MODELS}

    for provider, model, t_in, t_out, c_read, c_write, cost, created_at, source in rows:
        usage = Usage(
            input_tokens=t_in, output_tokens=t_out, cache_read_tokens=c_read,
            cache_write_tokens=c_write,
        )  # fmt: skip
        price = pricer.price(provider, model, usage, when=created_at)
        assert (cost, source) == (price.cost_usd, price.source), (model, usage)
