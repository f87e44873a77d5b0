"""The trust model's lint: money is written only by the service, with an attestation.

Fails a migration that
1. grants INSERT (on the table or any column) on a table named like `usage*` or `billing*` in an
   API-exposed schema to `anon` or `authenticated`, or
2. lets `anon`/`authenticated` execute a SECURITY DEFINER function that writes such a table —
   directly, or through the functions it calls — unless the function takes an attestation argument
   (`p_attestation`, or `p_mac`): without one, anyone signed in can record usage through it.

The write detection reads function bodies as text (INSERT INTO / UPDATE / DELETE FROM a matching
table, and calls of other schema-qualified functions); trigger functions are not callable by API
roles and are left out.
"""

from __future__ import annotations

import re

import psycopg

from app.advisor.catalog import SYSTEM_SCHEMAS, exposed_schemas
from app.advisor.result import CheckResult

NAME = "billing_writes_attested"
_BILLING_TABLE = r"(?:\"?(\w+)\"?\.)?\"?((?:usage|billing)\w*)\"?"
_WRITE = re.compile(rf"\b(?:insert\s+into|update|delete\s+from)\s+{_BILLING_TABLE}", re.I)
_CALL = re.compile(r"\b(\w+)\.(\w+)\s*\(", re.I)
ATTESTATION_ARGS = frozenset({"p_attestation", "p_mac"})


def check_billing_writes(conn: psycopg.Connection) -> CheckResult:
    schemas = exposed_schemas(conn)
    billing = {
        (schema, table)
        for schema, table in conn.execute(
            "select n.nspname, c.relname from pg_catalog.pg_class c"
            " join pg_catalog.pg_namespace n on n.oid = c.relnamespace"
            " where c.relkind in ('r', 'p', 'v', 'f')"
            " and (c.relname like 'usage%%' or c.relname like 'billing%%')"
            " and n.nspname <> all(%s)",
            [list(SYSTEM_SCHEMAS)],
        ).fetchall()
    }
    details = [
        f"{schema}.{table}: {role} may INSERT; usage must be written only by the service"
        " (revoke it; record usage through an attested SECURITY DEFINER function)"
        for schema, table, role in conn.execute(
            "select n.nspname, c.relname, r.rolname from pg_catalog.pg_class c"
            " join pg_catalog.pg_namespace n on n.oid = c.relnamespace"
            " cross join pg_catalog.pg_roles r"
            " where r.rolname in ('anon', 'authenticated') and n.nspname = any(%s)"
            " and c.relkind in ('r', 'p', 'v', 'f')"
            " and (c.relname like 'usage%%' or c.relname like 'billing%%')"
            " and (pg_catalog.has_table_privilege(r.oid, c.oid, 'INSERT')"
            "      or pg_catalog.has_any_column_privilege(r.oid, c.oid, 'INSERT'))"
            " order by 1, 2, 3",
            [schemas],
        ).fetchall()
    ]
    functions = conn.execute(
        "select p.oid::regprocedure::text, n.nspname, p.proname, p.prosrc, p.prosecdef,"
        " coalesce(p.proargnames, '{}'),"
        " pg_catalog.has_function_privilege('anon', p.oid, 'execute')"
        "   or pg_catalog.has_function_privilege('authenticated', p.oid, 'execute')"
        " from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace"
        " where n.nspname <> all(%s) and n.nspname not like 'pg\\_%%'"
        " and p.prorettype <> 'pg_catalog.trigger'::pg_catalog.regtype",
        [list(SYSTEM_SCHEMAS)],
    ).fetchall()
    sources = {(schema, name): source or "" for _, schema, name, source, *_ in functions}
    for signature, schema, name, _, definer, args, callable_by_api in functions:
        if not (definer and callable_by_api) or ATTESTATION_ARGS & set(args):
            continue
        written = _writes(schema, name, sources, billing, set())
        if written:
            details.append(
                f"{signature}: SECURITY DEFINER, callable by anon/authenticated, writes"
                f" {', '.join(sorted(written))} with no attestation argument"
                " (p_attestation); anyone signed in could record or shape usage through it"
            )
    return CheckResult(NAME, "ERROR", not details, details)


def _writes(
    schema: str,
    name: str,
    sources: dict[tuple[str, str], str],
    billing: set[tuple[str, str]],
    seen: set[tuple[str, str]],
) -> set[str]:
    """The billing tables a function writes, itself or through the functions it calls."""
    if (schema, name) in seen:
        return set()
    seen.add((schema, name))
    source = sources.get((schema, name), "")
    written = {
        f"{s}.{t}"
        for table_schema, table in _WRITE.findall(source)
        for s, t in [((table_schema or "public").lower(), table.lower())]
        if (s, t) in billing
    }
    for callee_schema, callee in _CALL.findall(source):
        key = (callee_schema.lower(), callee.lower())
        if key in sources:
            written |= _writes(*key, sources, billing, seen)
    return written
