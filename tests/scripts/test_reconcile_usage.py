"""`scripts/reconcile_usage.py`: the rollup equals the raw rows (exit 0), a drift exits 1."""

from __future__ import annotations

import importlib.util
from types import ModuleType

import psycopg
import pytest

from tests.analytics.seeding import migrate_and_seed
from tests.support.database import ROOT, FreshDatabase


@pytest.fixture(scope="module")
def reconcile_usage() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "reconcile_usage", ROOT / "scripts" / "reconcile_usage.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reconcile_usage_seeded_database_is_equal_to_the_last_decimal(
    reconcile_usage: ModuleType, fresh_db: FreshDatabase, capsys: pytest.CaptureFixture[str]
) -> None:
    migrate_and_seed(fresh_db)
    with psycopg.connect(fresh_db.dsn) as conn:
        row = conn.execute("select sum(cost_usd)::text from public.usage_logs").fetchone()
    assert row is not None

    code = reconcile_usage.main(["--db-url", fresh_db.dsn])

    out = capsys.readouterr().out
    assert code == 0
    assert "equal exactly    : True" in out
    assert out.count(f"cost {row[0]} USD") == 2  # raw and rollup, every decimal


def test_reconcile_usage_drifted_rollup_exits_1_and_shows_the_group(
    reconcile_usage: ModuleType, fresh_db: FreshDatabase, capsys: pytest.CaptureFixture[str]
) -> None:
    migrate_and_seed(fresh_db)
    with psycopg.connect(fresh_db.superuser_dsn) as conn:
        conn.execute(
            "update public.usage_daily set requests = requests + 1"
            " where ctid = (select ctid from public.usage_daily limit 1)"
        )

    code = reconcile_usage.main(["--db-url", fresh_db.dsn])

    assert code == 1
    assert "differs:" in capsys.readouterr().out
