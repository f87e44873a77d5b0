"""Migration 20261206000100: a key in Supabase Vault attests like a row of attestation_keys.

The Vault is the stand-in of tests/support/vault.sql (same names and signatures as
supabase_vault); `private.attested` is what every attested RPC calls first.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import psycopg
import pytest

from app.db.migrate import apply_migrations
from tests.support.database import MIGRATIONS, FreshDatabase

VAULT_SQL = Path(__file__).resolve().parents[1] / "support" / "vault.sql"
KEY = "a-vault-held-attestation-key-32-bytes+"
PAYLOAD = '{"user_id": "00000000-0000-0000-0000-000000000001"}'


def _mac(key: str, kind: str = "chat_begin", payload: str = PAYLOAD) -> str:
    return hmac.new(key.encode(), f"{kind}\n{payload}".encode(), hashlib.sha256).hexdigest()


def _answer(db: FreshDatabase, mac: str) -> tuple[bool, str | None]:
    with psycopg.connect(db.superuser_dsn) as conn:
        row = conn.execute(
            "select private.attested('chat_begin', %(p)s, %(m)s),"
            " private.attestation_key_source('chat_begin', %(p)s, %(m)s)",
            {"p": PAYLOAD, "m": mac},
        ).fetchone()
    assert row is not None
    return row[0], row[1]


@pytest.fixture
def vaulted(fresh_db: FreshDatabase) -> FreshDatabase:
    with psycopg.connect(fresh_db.superuser_dsn, autocommit=True) as conn:
        conn.execute(VAULT_SQL.read_text().encode())
    apply_migrations(fresh_db.dsn, MIGRATIONS)
    return fresh_db


def _store(db: FreshDatabase, secret: str) -> None:
    with psycopg.connect(db.dsn, autocommit=True) as conn:  # as postgres, like the CLI
        conn.execute("select vault.create_secret(%s, 'billing_attestation_key')", [secret])


def test_attested_accepts_a_mac_made_with_the_vault_secret_and_names_vault(
    vaulted: FreshDatabase,
) -> None:
    assert _answer(vaulted, _mac(KEY)) == (False, None)
    _store(vaulted, KEY)

    assert _answer(vaulted, _mac(KEY)) == (True, "vault")
    assert _answer(vaulted, _mac("another-key-of-at-least-32-bytes-long")) == (False, None)
    assert _answer(vaulted, _mac(KEY, kind="chat_finish")) == (False, None)  # kind is bound


def test_attested_prefers_naming_the_table_and_refuses_a_short_vault_secret(
    vaulted: FreshDatabase,
) -> None:
    _store(vaulted, "short")
    assert _answer(vaulted, _mac("short")) == (False, None)  # under 32 bytes, as the table's CHECK
    with psycopg.connect(vaulted.superuser_dsn, autocommit=True) as conn:
        conn.execute("insert into private.attestation_keys (key) values (%s)", [KEY.encode()])
    assert _answer(vaulted, _mac(KEY)) == (True, "private.attestation_keys")


def test_attested_without_vault_uses_the_table_alone(fresh_db: FreshDatabase) -> None:
    apply_migrations(fresh_db.dsn, MIGRATIONS)
    with psycopg.connect(fresh_db.superuser_dsn, autocommit=True) as conn:
        conn.execute("insert into private.attestation_keys (key) values (%s)", [KEY.encode()])

    assert _answer(fresh_db, _mac(KEY)) == (True, "private.attestation_keys")
    assert _answer(fresh_db, "0" * 64) == (False, None)
