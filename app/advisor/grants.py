"""Check 6: tables the Data API exposes carry exactly the GRANTs their policies need.

New Supabase projects no longer grant new `public` tables to the API roles automatically
(docs/design.md §7), so a migration can create a table with perfect policies that nobody can
use; and the old default grants `anon` everything, which only RLS then holds back.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from app.advisor.catalog import existing_api_roles, exposed_schemas, policies
from app.advisor.result import CheckResult

_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE")


@dataclass(frozen=True)
class _Table:
    schema: str
    name: str
    rls: bool
    held: dict[str, frozenset[str]]  # role -> privileges it holds (table or any column)

    @property
    def label(self) -> str:
        return f"{self.schema}.{self.name}"


def check_api_grants(conn: psycopg.Connection) -> CheckResult:
    """Flag exposed RLS tables whose grants and policies disagree. The exact rule:

    For every table (relkind r/p, not owned by an extension) in an exposed schema with RLS on:

    1. *Unusable policy.* For each policy, its API roles are `anon`/`authenticated` among its
       roles (both when it is for PUBLIC); policies for other roles only are ignored. Then at
       least one of those API roles must hold the privilege the policy's command needs —
       SELECT, INSERT or UPDATE on the table or on at least one column, DELETE on the table;
       for `FOR ALL`, any one of the four. Otherwise every API request answers 42501 and the
       policy is dead.
    2. *Anon over-granted.* If `anon` holds SELECT, INSERT, UPDATE, DELETE or TRUNCATE (directly
       or through PUBLIC) but no policy applies to `anon` (naming it, or PUBLIC), the grant is
       flagged: only RLS stands between anon and the rows, and TRUNCATE ignores RLS entirely.

    Privileges are read with `has_table_privilege`/`has_any_column_privilege`, so grants
    inherited through PUBLIC or role membership count.
    """
    roles = existing_api_roles(conn)
    tables = _tables(conn, roles)
    by_table: dict[tuple[str, str], list[str]] = {}
    details: list[str] = []
    for policy in policies(conn, schemas=exposed_schemas(conn)):
        table = tables.get((policy.schema, policy.table))
        if table is None or not table.rls:
            continue
        by_table.setdefault((policy.schema, policy.table), []).extend(policy.roles)
        api_roles = [r for r in roles if policy.applies_to(r)]
        if not api_roles:
            continue
        needed = (
            ("SELECT", "INSERT", "UPDATE", "DELETE")
            if policy.command == "ALL"
            else (policy.command,)
        )
        if not any(set(needed) & table.held[role] for role in api_roles):
            what = "any of SELECT/INSERT/UPDATE/DELETE" if policy.command == "ALL" else needed[0]
            details.append(
                f"{policy.label} for {policy.command} to {', '.join(policy.roles)}, but"
                f" {' or '.join(api_roles)} holds no {what} privilege, so the API answers 42501;"
                f" grant {needed[0].lower()} on {table.label} to {api_roles[-1]}"
            )
    if "anon" in roles:
        for key, table in tables.items():
            targeted = by_table.get(key, [])
            anon_held = table.held["anon"]
            if table.rls and anon_held and not ({"anon", "public"} & set(targeted)):
                held = ", ".join(p for p in _PRIVILEGES if p in anon_held)
                details.append(
                    f"{table.label}: anon holds {held} but no policy applies to anon;"
                    f" revoke all on {table.label} from anon"
                )
    return CheckResult("api_grants", "ERROR", not details, details)


def _tables(conn: psycopg.Connection, roles: list[str]) -> dict[tuple[str, str], _Table]:
    rows = conn.execute(
        """
        select n.nspname, c.relname, c.relrowsecurity, r.name,
               array_remove(array[
                 case when pg_catalog.has_any_column_privilege(r.name, c.oid, 'SELECT')
                      then 'SELECT' end,
                 case when pg_catalog.has_any_column_privilege(r.name, c.oid, 'INSERT')
                      then 'INSERT' end,
                 case when pg_catalog.has_any_column_privilege(r.name, c.oid, 'UPDATE')
                      then 'UPDATE' end,
                 case when pg_catalog.has_table_privilege(r.name, c.oid, 'DELETE')
                      then 'DELETE' end,
                 case when pg_catalog.has_table_privilege(r.name, c.oid, 'TRUNCATE')
                      then 'TRUNCATE' end
               ], null)
        from pg_catalog.pg_class c
        join pg_catalog.pg_namespace n on n.oid = c.relnamespace
        cross join unnest(%s::text[]) as r(name)
        where c.relkind in ('r', 'p') and n.nspname = any(%s)
          and not exists (select 1 from pg_catalog.pg_depend d
                          where d.objid = c.oid and d.deptype = 'e')
        """,
        [roles, exposed_schemas(conn)],
    ).fetchall()
    held: dict[tuple[str, str], dict[str, frozenset[str]]] = {}
    rls: dict[tuple[str, str], bool] = {}
    for schema, name, rls_on, role, privileges in rows:
        held.setdefault((schema, name), {})[role] = frozenset(privileges)
        rls[(schema, name)] = rls_on
    return {
        key: _Table(key[0], key[1], rls[key], {r: held[key].get(r, frozenset()) for r in roles})
        for key in held
    }
