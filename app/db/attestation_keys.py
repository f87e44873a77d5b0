"""Provision the billing attestation key into `private.attestation_keys` (`chat-stream migrate`).

The key must never be in a migration file; the runner adds it from BILLING_ATTESTATION_KEY after
the migrations, as the `postgres` role that owns the private schema. On a hosted project without a
direct connection, run the same insert in the SQL editor (docs/design.md §13).
"""

from __future__ import annotations

import psycopg

_INSERT = """
insert into private.attestation_keys (key)
select %(key)s
 where not exists (select 1 from private.attestation_keys k where k.key = %(key)s)
"""


def provision_attestation_key(dsn: str, key: bytes) -> bool:
    """Add `key` unless the database has it; returns whether it was added."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(_INSERT, {"key": key}).rowcount == 1
