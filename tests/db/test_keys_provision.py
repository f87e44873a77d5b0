"""`chat-stream keys provision --db-url …`: the attestation key into private.attestation_keys."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from app.cli import main
from app.config import get_settings
from app.db.migrate import apply_migrations
from tests.support.database import MIGRATIONS, FreshDatabase

KEY = "a-provisioned-attestation-key-of-32-bytes+"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[pytest.MonkeyPatch]:
    """The CLI reads the environment through the cached get_settings(): fresh per test."""
    monkeypatch.chdir(tmp_path)  # no developer .env
    for name in ("BILLING_ATTESTATION_KEY", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def _keys(db: FreshDatabase) -> list[bytes]:
    with psycopg.connect(db.superuser_dsn) as conn:
        return [bytes(r[0]) for r in conn.execute("select key from private.attestation_keys")]


def test_keys_provision_adds_the_configured_key_once_showing_six_characters(
    fresh_db: FreshDatabase, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    apply_migrations(fresh_db.dsn, MIGRATIONS)
    env.setenv("BILLING_ATTESTATION_KEY", KEY)

    first = main(["keys", "provision", "--db-url", fresh_db.dsn])
    second = main(["keys", "provision", "--db-url", fresh_db.dsn])

    out = capsys.readouterr().out.splitlines()
    assert (first, second) == (0, 0)
    assert out == [
        f"attestation key {KEY[:6]}… added to private.attestation_keys",
        f"attestation key {KEY[:6]}… already in private.attestation_keys",
    ]
    assert _keys(fresh_db) == [KEY.encode()]


def test_keys_provision_without_a_key_makes_one_and_prints_it_once(
    fresh_db: FreshDatabase, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    apply_migrations(fresh_db.dsn, MIGRATIONS)

    assert main(["keys", "provision", "--db-url", fresh_db.dsn]) == 0

    printed = capsys.readouterr()
    [line] = printed.out.splitlines()
    name, _, secret = line.partition("=")
    assert name == "BILLING_ATTESTATION_KEY" and len(secret) >= 32
    assert "it is not shown again" in printed.err
    assert _keys(fresh_db) == [secret.encode()]


def test_keys_provision_before_the_migrations_says_to_apply_them(
    fresh_db: FreshDatabase, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env.setenv("BILLING_ATTESTATION_KEY", KEY)

    assert main(["keys", "provision", "--db-url", fresh_db.dsn]) == 1

    assert capsys.readouterr().err.strip() == (
        "chat-stream: the database has no private.attestation_keys: apply the migrations first"
        " (`supabase db push` or `chat-stream migrate`)"
    )


def test_keys_provision_without_a_database_is_one_line_exit_2(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keys", "provision"]) == 2
    assert capsys.readouterr().err.startswith("chat-stream: DATABASE_URL is not set")
