"""Catalogue checks in the spirit of Supabase's database advisor (splinter lints, wire ref. §4.4).

Each check takes a connection (any role that can read the catalogue; set `search_path = ''` so
policy expressions deparse schema-qualified) and returns one `CheckResult`. The lint numbers in
the details are splinter's, so a reader can look the remediation up.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import psycopg

from app.advisor.catalog import (
    SYSTEM_SCHEMAS,
    Policy,
    existing_api_roles,
    exposed_schemas,
    policies,
)
from app.advisor.result import CheckResult

_NOT_EXTENSION_OWNED = """not exists (
    select 1 from pg_catalog.pg_depend d where d.objid = {oid} and d.deptype = 'e')"""


def check_rls_enabled(conn: psycopg.Connection) -> CheckResult:
    """Exposed tables have RLS on (0013) and a policy (0008); no policy without RLS (0007).

    Stricter than splinter's 0013, which only flags tables anon/authenticated can already SELECT:
    a table without RLS is one GRANT away from being readable by every user.
    """
    rows = conn.execute(
        f"""
        select n.nspname, c.relname, c.relrowsecurity,
               (select count(*) from pg_catalog.pg_policy p where p.polrelid = c.oid)
        from pg_catalog.pg_class c
        join pg_catalog.pg_namespace n on n.oid = c.relnamespace
        where c.relkind in ('r', 'p') and n.nspname = any(%s)
          and {_NOT_EXTENSION_OWNED.format(oid="c.oid")}
        order by 1, 2
        """,  # noqa: S608 - a constant fragment, no input
        [exposed_schemas(conn)],
    ).fetchall()
    details: list[str] = []
    for schema, table, rls, n_policies in rows:
        name = f"{schema}.{table}"
        if not rls and n_policies:
            details.append(
                f"{name}: {n_policies} policies but RLS is disabled, so they do nothing (0007);"
                f" alter table {name} enable row level security"
            )
        elif not rls:
            details.append(
                f"{name}: RLS is disabled in an exposed schema; any role granted the table reads"
                f" and writes every row (0013); alter table {name} enable row level security"
            )
        elif not n_policies:
            details.append(
                f"{name}: RLS is enabled but there is no policy, so no API role can reach a row"
                " (0008); add policies, or move the table to a schema the API does not expose"
            )
    return CheckResult("rls_enabled", "ERROR", not details, details)


# A call counts as wrapped when it heads a sub-SELECT's target list: `( SELECT auth.uid() AS uid)`
# or `( SELECT (auth.jwt() ->> 'role'::text))` as pg_get_expr deparses them.
_AUTH_CALL = r"(?:auth\.(?:uid|jwt|role|email)\(\)|current_setting\()"
_ANY_CALL = re.compile(_AUTH_CALL)
_WRAPPED_CALL = re.compile(r"select\s+\(*\s*" + _AUTH_CALL)


def _bare_auth_calls(expression: str | None) -> int:
    if not expression:
        return 0
    text = expression.lower()
    return len(_ANY_CALL.findall(text)) - len(_WRAPPED_CALL.findall(text))


def check_auth_rls_initplan(conn: psycopg.Connection) -> CheckResult:
    """Policies call `(select auth.uid())`, not a bare `auth.uid()` evaluated per row (0003).

    Text-based like splinter, but counts calls: a policy that wraps one call and not another is
    still flagged (splinter passes it as soon as one `select auth.uid()` appears).
    """
    details = [
        f"{p.label} calls auth.uid()/auth.jwt()/auth.role()/auth.email()/current_setting()"
        " once per row (0003); wrap it as (select auth.uid())"
        for p in policies(conn)
        if p.rls_enabled and (_bare_auth_calls(p.qual) or _bare_auth_calls(p.with_check))
    ]
    return CheckResult("auth_rls_initplan", "WARN", not details, details)


def check_unindexed_foreign_keys(conn: psycopg.Connection) -> CheckResult:
    """Every foreign key has an index whose leading key columns are exactly its columns (0001).

    Without one, deleting a parent row scans the child table, and RLS joins on it are slow.
    """
    rows = conn.execute(
        f"""
        select n.nspname, cl.relname, ct.conname,
               array(select a.attname from unnest(ct.conkey) with ordinality as k(attnum, ord)
                     join pg_catalog.pg_attribute a
                       on a.attrelid = ct.conrelid and a.attnum = k.attnum
                     order by k.ord)
        from pg_catalog.pg_constraint ct
        join pg_catalog.pg_class cl on cl.oid = ct.conrelid
        join pg_catalog.pg_namespace n on n.oid = cl.relnamespace
        where ct.contype = 'f' and n.nspname <> all(%s)
          and {_NOT_EXTENSION_OWNED.format(oid="cl.oid")}
          and not exists (
            select 1 from pg_catalog.pg_index i
            where i.indrelid = ct.conrelid and i.indisvalid
              and cardinality(ct.conkey) <= i.indnkeyatts
              and (string_to_array(i.indkey::text, ' ')::int2[])[1:cardinality(ct.conkey)]
                  @> ct.conkey
              and (string_to_array(i.indkey::text, ' ')::int2[])[1:cardinality(ct.conkey)]
                  <@ ct.conkey
          )
        order by 1, 2, 3
        """,  # noqa: S608 - a constant fragment, no input
        [list(SYSTEM_SCHEMAS)],
    ).fetchall()
    details = [
        f"{schema}.{table}: foreign key {conname} ({', '.join(cols)}) has no index leading with"
        f" those columns (0001); create index on {schema}.{table} ({', '.join(cols)})"
        for schema, table, conname, cols in rows
    ]
    return CheckResult("unindexed_foreign_keys", "INFO", not details, details)


def check_function_search_path(conn: psycopg.Connection) -> CheckResult:
    """Functions outside system/extension schemas pin `search_path` (0011).

    An unpinned function resolves names through the caller's search_path, so a caller who can
    create objects earlier in it can hijack a SECURITY DEFINER function.
    """
    rows = conn.execute(
        f"""
        select p.oid::regprocedure::text
        from pg_catalog.pg_proc p
        join pg_catalog.pg_namespace n on n.oid = p.pronamespace
        where n.nspname <> all(%s) and n.nspname not like 'pg\\_%%'
          and p.prokind in ('f', 'p')
          and {_NOT_EXTENSION_OWNED.format(oid="p.oid")}
          and not exists (
            select 1 from unnest(coalesce(p.proconfig, '{{}}')) as config
            where config like 'search\\_path=%%'
          )
        order by 1
        """,  # noqa: S608 - a constant fragment, no input
        [list(SYSTEM_SCHEMAS)],
    ).fetchall()
    details = [
        f"{signature}: search_path is not set, so it is role-mutable (0011);"
        " add `set search_path = ''` and schema-qualify names in the body"
        for (signature,) in rows
    ]
    return CheckResult("function_search_path_mutable", "WARN", not details, details)


def check_security_definer_views(conn: psycopg.Connection) -> CheckResult:
    """No view in an exposed schema that anon/authenticated can read runs as its owner (0010).

    Such a view bypasses the RLS of the tables it reads; PG15+ `security_invoker = true` fixes it.
    """
    roles = existing_api_roles(conn)
    rows = conn.execute(
        f"""
        select n.nspname, c.relname
        from pg_catalog.pg_class c
        join pg_catalog.pg_namespace n on n.oid = c.relnamespace
        where c.relkind = 'v' and n.nspname = any(%s)
          and exists (select 1 from unnest(%s::text[]) as r(name)
                      where pg_catalog.has_table_privilege(r.name, c.oid, 'SELECT'))
          and {_NOT_EXTENSION_OWNED.format(oid="c.oid")}
          and not (lower(coalesce(c.reloptions::text, '{{}}'))::text[] && array[
            'security_invoker=1', 'security_invoker=true', 'security_invoker=yes',
            'security_invoker=on'])
        order by 1, 2
        """,  # noqa: S608 - a constant fragment, no input
        [exposed_schemas(conn), roles],
    ).fetchall()
    details = [
        f"{schema}.{view}: view runs with its owner's rights and bypasses RLS (0010);"
        f" alter view {schema}.{view} set (security_invoker = true)"
        for schema, view in rows
    ]
    return CheckResult("security_definer_view", "ERROR", not details, details)


def check_policy_safety(conn: psycopg.Connection) -> CheckResult:
    """No write policy that is always true (0024) and no policy reading `user_metadata` (0015).

    0024 as splinter has it: permissive policies for anon/authenticated/PUBLIC on RLS tables
    whose USING (UPDATE/DELETE/ALL) or WITH CHECK (INSERT/UPDATE/ALL) is `true` or `1=1` (or
    absent where that means "allow"); SELECT `using (true)` is exempt (public read is often
    meant). 0015 also flags `raw_user_meta_data`, which users can edit just the same.
    """
    details: list[str] = []
    for policy in policies(conn):
        if _always_true_write(policy):
            details.append(
                f"{policy.label} for {policy.command} to {', '.join(policy.roles)} allows any"
                " row (0024); restrict it, e.g. with check ((select auth.uid()) = user_id)"
            )
        expressions = f"{policy.qual or ''} {policy.with_check or ''}".lower()
        if "user_metadata" in expressions or "raw_user_meta_data" in expressions:
            details.append(
                f"{policy.label} reads user_metadata, which every user can edit (0015);"
                " authorise on app_metadata or a table instead"
            )
    return CheckResult("unsafe_policies", "ERROR", not details, details)


_TRUE_PATTERNS = frozenset({"true", "(true)", "1=1", "(1=1)"})


def _always_true_write(policy: Policy) -> bool:
    if not (policy.rls_enabled and policy.permissive):
        return False
    if not ("public" in policy.roles or {"anon", "authenticated"} & set(policy.roles)):
        return False
    qual = re.sub(r"\s+", "", (policy.qual or "").lower())
    check = re.sub(r"\s+", "", (policy.with_check or "").lower())
    cmd = policy.command
    using_true = cmd in ("UPDATE", "DELETE", "ALL") and (
        policy.qual is None or qual in _TRUE_PATTERNS
    )
    check_true = check in _TRUE_PATTERNS or (
        policy.with_check is None
        and (cmd == "INSERT" or (cmd in ("UPDATE", "ALL") and qual in _TRUE_PATTERNS))
    )
    return using_true or check_true


LINTS: dict[str, Callable[[psycopg.Connection], CheckResult]] = {
    "rls_enabled": check_rls_enabled,
    "auth_rls_initplan": check_auth_rls_initplan,
    "unindexed_foreign_keys": check_unindexed_foreign_keys,
    "function_search_path_mutable": check_function_search_path,
    "security_definer_view": check_security_definer_views,
    "unsafe_policies": check_policy_safety,
}
