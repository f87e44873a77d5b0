"""The billing attestation key in the database: provision it, and say where it is held.

The key is never in a migration file. Two stores hold it (docs/design.md §13): a row of
`private.attestation_keys` (`chat-stream migrate` adds BILLING_ATTESTATION_KEY after the
migrations; `chat-stream keys provision --db-url …` does only that), or the Supabase Vault secret
`billing_attestation_key` (`supabase db push` upserts it from config.toml's `[db.vault]`; migration
20261206000100 reads it). `chat-stream check` asks `public.chat_attestation_source` which one
accepted its probe and reports it with these phrases.
"""

from __future__ import annotations

import psycopg

VAULT_SECRET = "billing_attestation_key"
PROVISION_COMMAND = "chat-stream keys provision --db-url '<session pooler DSN>'"
SOURCES = {
    "private.attestation_keys": "held in private.attestation_keys",
    "vault": f"held in Supabase Vault as {VAULT_SECRET}",
}

_INSERT = """
insert into private.attestation_keys (key)
select %(key)s
 where not exists (select 1 from private.attestation_keys k where k.key = %(key)s)
"""


def provision_attestation_key(dsn: str, key: bytes) -> bool:
    """Add `key` unless the database has it; returns whether it was added."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(_INSERT, {"key": key}).rowcount == 1


def describe_source(source: object) -> str:
    """`chat_attestation_source`'s answer as the check's words ('' for an older database)."""
    return SOURCES.get(str(source), "") if source else ""


def missing_key_advice(db_url_source: str) -> str:
    """What to run when no store holds BILLING_ATTESTATION_KEY, naming the exact command."""
    command = (
        'chat-stream keys provision --db-url "$DATABASE_URL"'
        if db_url_source == "DATABASE_URL"
        else PROVISION_COMMAND
    )
    return (
        "the database does not hold BILLING_ATTESTATION_KEY (neither private.attestation_keys "
        f"nor Supabase Vault): every turn would be refused; run `{command}` (or `supabase db "
        f"push` with BILLING_ATTESTATION_KEY set, which stores it in Vault as {VAULT_SECRET})"
    )
