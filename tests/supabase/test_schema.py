"""Catalogue-level checks on the migrated schema, in the spirit of Supabase's splinter lints.

They read pg_catalog after every migration has run, so a future table, policy or function that
breaks a rule (docs/design.md §7; RLS and grants as PostgREST applies them) fails here, not
in production advisors.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from app.local.stack import LocalStack

LATEST_MESSAGES = (
    "select id, role, content, created_at from public.messages where conversation_id = %s"
    " order by created_at desc, id desc limit 20"
)
# splinter 0003: these are evaluated once per row unless wrapped as `(select …)`.
_PER_ROW_CALL = re.compile(
    r"(?P<wrapped>select\s+)?(?:auth\.(?:uid|jwt|role|email)\(\)|current_setting\()", re.I
)


@pytest.fixture
def catalogue(local_stack: LocalStack) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
    with psycopg.connect(local_stack.pg.superuser_dsn) as conn:
        yield conn


def test_every_foreign_key_has_an_index_on_its_leading_columns(
    catalogue: psycopg.Connection[tuple[Any, ...]],
) -> None:
    rows = catalogue.execute(
        """
        select c.conrelid::regclass::text, c.conname,
               exists (
                 select 1 from pg_index i
                  where i.indrelid = c.conrelid
                    and i.indpred is null  -- a partial index does not serve the FK's lookups
                    and (string_to_array(i.indkey::text, ' ')::smallint[])
                          [1:cardinality(c.conkey)] @> c.conkey
               )
          from pg_constraint c
         where c.contype = 'f' and c.connamespace = 'public'::regnamespace
        """
    ).fetchall()
    assert len(rows) >= 6  # users→auth, conversations, messages×2, usage_logs×3
    assert [(table, name) for table, name, indexed in rows if not indexed] == []


def test_every_policy_wraps_auth_calls_in_a_select(
    catalogue: psycopg.Connection[tuple[Any, ...]],
) -> None:
    rows = catalogue.execute(
        "select tablename, policyname, coalesce(qual, '') || ' ' || coalesce(with_check, '')"
        " from pg_policies where schemaname = 'public'"
    ).fetchall()
    calls = [
        (table, policy, m.group(0))
        for table, policy, text in rows
        for m in _PER_ROW_CALL.finditer(text)
    ]
    assert any("auth.uid()" in call for _, _, call in calls)
    assert [c for c in calls if not re.match(r"select\s", c[2], re.I)] == []


def test_every_public_function_pins_its_search_path(
    catalogue: psycopg.Connection[tuple[Any, ...]],
) -> None:
    rows = catalogue.execute(
        """
        select p.oid::regprocedure::text,
               coalesce(exists (select 1 from unnest(p.proconfig) s where s like 'search_path=%'),
                        false)
          from pg_proc p
         where p.pronamespace = 'public'::regnamespace
           and p.prokind in ('f', 'p')
           and not exists (select 1 from pg_depend d
                            where d.objid = p.oid and d.deptype = 'e')  -- extension-owned
        """
    ).fetchall()
    assert "handle_new_auth_user()" in {name for name, _ in rows}
    assert [name for name, pinned in rows if not pinned] == []


def test_security_definer_functions_callable_by_api_roles_are_only_the_attested_ones(
    catalogue: psycopg.Connection[tuple[Any, ...]],
) -> None:
    rows = catalogue.execute(
        """
        select p.oid::regprocedure::text, r.rolname,
               coalesce('p_attestation' = any(p.proargnames) or 'p_mac' = any(p.proargnames),
                        false)
          from pg_proc p cross join pg_roles r
         where p.pronamespace = 'public'::regnamespace and p.prosecdef
           and r.rolname in ('anon', 'authenticated')
           and has_function_privilege(r.oid, p.oid, 'execute')
         order by 1, 2
        """
    ).fetchall()
    # splinter 0028/0029, with the one exception the trust model makes: the turn begins as the
    # signed-in user, through a definer function that checks an HMAC only the service can make
    # before it does anything. Renewals, checkpoints, finishes, a follower's reads and the key
    # check are the service's own (secret key): no API role may execute them.
    assert rows == [("chat_begin(text,text)", "authenticated", True)]


def test_chat_bookkeeping_functions_are_the_service_roles_alone(
    catalogue: psycopg.Connection[tuple[Any, ...]],
) -> None:
    rows = catalogue.execute(
        """
        select p.proname, p.prosecdef,
               has_function_privilege('service_role', p.oid, 'execute'),
               has_function_privilege('authenticated', p.oid, 'execute'),
               has_function_privilege('anon', p.oid, 'execute'),
               'p_attestation' = any(p.proargnames) or 'p_mac' = any(p.proargnames)
          from pg_proc p
         where p.pronamespace = 'public'::regnamespace
           and p.proname in ('chat_renew', 'chat_checkpoint', 'chat_checkpoint_signals',
                             'chat_finish', 'chat_stop', 'chat_turn_progress',
                             'chat_turn_signals', 'chat_attestation_check')
         order by 1
        """
    ).fetchall()
    assert rows == [
        (name, True, True, False, False, True)
        for name in (
            "chat_attestation_check",
            "chat_checkpoint",
            "chat_checkpoint_signals",
            "chat_finish",
            "chat_renew",
            "chat_stop",
            "chat_turn_progress",
            "chat_turn_signals",
        )
    ]


def test_anon_has_no_privileges_on_public_relations(
    catalogue: psycopg.Connection[tuple[Any, ...]],
) -> None:
    rows = catalogue.execute(
        """
        select c.relname, p.priv
          from pg_class c
         cross join unnest(array['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE',
                                 'REFERENCES', 'TRIGGER']) as p(priv)
         where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'p', 'v', 'm', 'f')
           and (has_table_privilege('anon', c.oid, p.priv)
                or (p.priv in ('SELECT', 'INSERT', 'UPDATE', 'REFERENCES')
                    and has_any_column_privilege('anon', c.oid, p.priv)))
        """
    ).fetchall()
    assert rows == []


def test_authenticated_cannot_insert_update_delete_or_truncate_usage_logs(
    catalogue: psycopg.Connection[tuple[Any, ...]],
) -> None:
    row = catalogue.execute(
        "select has_table_privilege('authenticated', 'public.usage_logs', 'UPDATE'),"
        " has_any_column_privilege('authenticated', 'public.usage_logs', 'UPDATE'),"
        " has_table_privilege('authenticated', 'public.usage_logs', 'DELETE'),"
        " has_table_privilege('authenticated', 'public.usage_logs', 'TRUNCATE'),"
        " has_table_privilege('authenticated', 'public.usage_logs', 'INSERT'),"
        " has_any_column_privilege('authenticated', 'public.usage_logs', 'INSERT')"
    ).fetchone()
    assert row == (False, False, False, False, False, False)  # usage is the service's to write


def test_views_exposed_to_api_roles_run_as_the_caller(
    catalogue: psycopg.Connection[tuple[Any, ...]],
) -> None:
    rows = catalogue.execute(
        """
        select c.relname from pg_class c
         where c.relnamespace = 'public'::regnamespace and c.relkind = 'v'
           and (has_table_privilege('anon', c.oid, 'SELECT')
                or has_table_privilege('authenticated', c.oid, 'SELECT'))
           and not coalesce('security_invoker=true' = any(c.reloptions), false)
        """
    ).fetchall()
    assert rows == []  # splinter 0010: a definer view bypasses RLS


def _plan_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _plan_nodes(child)


def _shape(nodes: list[dict[str, Any]]) -> str:
    """`Limit > Index Scan[messages_…](rows 20)`: what a failed assertion should show."""
    return " > ".join(
        f"{n['Node Type']}[{n.get('Index Name', '')}](rows {n.get('Actual Rows', '?')})"
        for n in nodes
    )


HEAVY_CONVERSATIONS, HEAVY_MESSAGES = 20, 200  # the caller: 4,000 messages in all


@pytest.fixture
def busy_conversation(local_stack: LocalStack) -> Iterator[tuple[uuid.UUID, uuid.UUID]]:
    """A heavy user among 1,000 light ones (one conversation of 3 messages each).

    Many light users make `user_id = <the caller>` look very selective to the planner, which
    tempts it to start from a user_id index. Yields (heavy user, one of its conversations).
    """
    heavy, light = uuid.uuid4(), [uuid.uuid4() for _ in range(1000)]
    with psycopg.connect(local_stack.pg.superuser_dsn) as conn:
        conn.execute(
            "insert into auth.users (id, aud, role, email)"
            " select u, 'authenticated', 'authenticated', u || '@schema.test'"
            " from unnest(%s::uuid[]) u",
            ([heavy, *light],),
        )
        for users, conversations, messages in (
            ([heavy], HEAVY_CONVERSATIONS, HEAVY_MESSAGES),
            (light, 1, 3),
        ):
            conn.execute(
                "with c as (insert into public.conversations (user_id)"
                "   select u from unnest(%s::uuid[]) u, generate_series(1, %s)"
                "   returning id, user_id)"
                " insert into public.messages (conversation_id, user_id, role, content, created_at)"
                " select c.id, c.user_id, 'user', 'm' || n, now() - n * interval '1 second'"
                " from c, generate_series(1, %s) n",
                (users, conversations, messages),
            )
        (conversation_id,) = conn.execute(
            "select id from public.conversations where user_id = %s limit 1", (heavy,)
        ).fetchone()  # type: ignore[misc]
        conn.execute("analyze public.messages")
    yield heavy, conversation_id
    with psycopg.connect(local_stack.pg.superuser_dsn) as conn:
        conn.execute("delete from auth.users where id = any(%s)", ([heavy, *light],))


def _explain_latest(
    local_stack: LocalStack, role: str, claims: dict[str, str], conversation_id: uuid.UUID
) -> tuple[list[tuple[Any, ...]], list[dict[str, Any]]]:
    """Run the query and EXPLAIN ANALYZE it as PostgREST would for `role`, no planner knobs."""
    with psycopg.connect(local_stack.ctx.dsn("authenticator")) as conn:
        conn.execute(
            "select set_config('role', %s, true), set_config('request.jwt.claims', %s, true)",
            (role, json.dumps(claims)),
        )
        rows = conn.execute(LATEST_MESSAGES, (conversation_id,)).fetchall()
        (plan,) = conn.execute(
            "explain (analyze, format json) " + LATEST_MESSAGES, (conversation_id,)
        ).fetchone()  # type: ignore[misc]
    return rows, list(_plan_nodes(plan[0]["Plan"]))


def test_latest_messages_query_walks_the_conversation_index_without_sorting(
    local_stack: LocalStack, busy_conversation: tuple[uuid.UUID, uuid.UUID]
) -> None:
    _, conversation_id = busy_conversation
    rows, nodes = _explain_latest(
        local_stack, "service_role", {"role": "service_role"}, conversation_id
    )
    assert [r[2] for r in rows] == [f"m{n}" for n in range(1, 21)]  # newest first
    scans = [n for n in nodes if "Scan" in n["Node Type"]]
    assert [(n["Node Type"], n.get("Index Name")) for n in scans] == [
        ("Index Scan", "messages_conversation_id_created_at_idx")
    ], _shape(nodes)
    assert scans[0]["Actual Rows"] == 20, _shape(nodes)
    assert "Sort" not in {n["Node Type"] for n in nodes}, _shape(nodes)


def test_latest_messages_query_under_rls_reads_only_that_conversation(
    local_stack: LocalStack, busy_conversation: tuple[uuid.UUID, uuid.UUID]
) -> None:
    # RLS adds `user_id = (select auth.uid())`. Whatever index the planner starts from, it must
    # not read the caller's whole history (4,000 rows) to return one conversation's latest 20.
    user_id, conversation_id = busy_conversation
    claims = {"sub": str(user_id), "role": "authenticated"}
    rows, nodes = _explain_latest(local_stack, "authenticated", claims, conversation_id)
    assert [r[2] for r in rows] == [f"m{n}" for n in range(1, 21)]
    index_scans = [n for n in nodes if "Index Name" in n]
    assert index_scans, _shape(nodes)
    for scan in index_scans:
        assert "conversation_id = " in scan["Index Cond"], _shape(nodes)
        read = scan["Actual Rows"] + scan.get("Rows Removed by Filter", 0)
        assert read <= HEAVY_MESSAGES, _shape(nodes)
    assert not {"Seq Scan", "BitmapAnd"} & {n["Node Type"] for n in nodes}, _shape(nodes)
