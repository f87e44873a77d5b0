"""`supabase/schema.sql` and the objects table in docs/design.md are what the migrations build.

Both are regenerated from a fresh database here and compared with the committed files, so a
migration committed without `python scripts/audit_schema.py` fails.
"""

from __future__ import annotations

import re
from pathlib import Path

import psycopg
import pytest

from app.advisor.inventory import BEGIN, END, inventory, render
from app.advisor.schema_dump import dump_schema
from app.local.stack import LocalStack
from tests.advisor.cases import migrations_with
from tests.support.database import MIGRATIONS, ROOT, FreshDatabase

SCHEMA_SQL = ROOT / "supabase" / "schema.sql"
DESIGN = ROOT / "docs" / "design.md"
REGENERATE = "run `.venv/bin/python scripts/audit_schema.py` and commit the result"


def _recorded_major() -> int:
    found = re.search(r"\(PostgreSQL (\d+)\)", SCHEMA_SQL.read_text())
    assert found, f"{SCHEMA_SQL} has no generator header"
    return int(found.group(1))


def _same_server(local_stack: LocalStack, db: FreshDatabase) -> int:
    """The session cluster's major; skip where it cannot reproduce the committed dump (CI can:
    Debian's PostgreSQL 15 with pgcrypto, the one the files were generated with)."""
    major = int(re.search(r"\d+", local_stack.pg.install.version).group())  # type: ignore[union-attr]
    with psycopg.connect(db.dsn) as conn:
        row = conn.execute("select to_regprocedure('extensions.hmac(bytea,bytea,text)')").fetchone()
    if major != _recorded_major() or not (row and row[0]):
        pytest.skip(
            f"supabase/schema.sql was generated on PostgreSQL {_recorded_major()} with"
            f" pgcrypto; this cluster is {major}{'' if row and row[0] else ' without it'}"
        )
    return major


def test_schema_sql_and_objects_table_are_up_to_date(
    local_stack: LocalStack, fresh_db: FreshDatabase
) -> None:
    major = _same_server(local_stack, fresh_db)
    objects = inventory(fresh_db.dsn, MIGRATIONS)
    schema = dump_schema(local_stack.pg.install.bin_dir / "pg_dump", fresh_db.dsn, major)

    document = DESIGN.read_text()
    committed = document[document.index(BEGIN) : document.index(END) + len(END)]
    assert committed == render(objects), (
        f"the objects table in docs/design.md is stale: {REGENERATE}"
    )
    assert SCHEMA_SQL.read_text() == schema, f"supabase/schema.sql is stale: {REGENERATE}"


def test_inventory_names_the_last_migration_that_changed_an_object_and_its_callers(
    fresh_db: FreshDatabase, tmp_path: Path
) -> None:
    folder = migrations_with(
        tmp_path,
        "comment on function public.chat_ping() is 'touched';\n"
        "revoke execute on function public.chat_ping() from anon;",
        "touch_ping",
    )

    found = {o.name: o for o in inventory(fresh_db.dsn, folder)}

    ping = found["public.chat_ping()"]
    assert (ping.migration, ping.access) == (
        "29991231000000_touch_ping",
        "authenticated, service_role",
    )
    assert found["public.chat_begin(p_turn text, p_attestation text)"].migration == (
        "20261206000220_turn_identity"
    )
    assert found["private.attested(p_kind text, p_payload text, p_mac text)"].migration == (
        "20261206000100_attestation_key_vault"
    )
    assert found["private.attestation_keys"].access == "no API role"
