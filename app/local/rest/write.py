"""INSERT (and upsert), UPDATE and DELETE statements of the REST stand-in (wire ref. §2.1–2.4).

The request body reaches PostgreSQL as one bound `json` value that `json_populate_record(set)`
turns into rows of the table's own type, so PostgreSQL converts every value exactly as PostgREST
lets it. Bulk inserts are one INSERT statement; `missing=default` merges each row over its
columns' defaults, as PostgREST does.
"""

from __future__ import annotations

from typing import Any

from psycopg import sql

from app.local.rest.body import Body
from app.local.rest.embed import has_embeds, project
from app.local.rest.errors import (
    RestError,
    column_not_found,
    invalid_body,
    invalid_put_filters,
    undefined_column,
)
from app.local.rest.schema import Catalogue, Table
from app.local.rest.sql.filters import where_clause
from app.local.rest.sql.order import order_clause, page_clause
from app.local.rest.sql.projection import select_list
from app.local.rest.sql.statement import result_select
from app.local.rest.sql.target import Binder, Statement, Target
from app.local.rest.syntax import ApiQuery, Filter


def _relation(table: Table) -> sql.Identifier:
    return sql.Identifier(table.schema, table.name)


def _columns_for(table: Table, query: ApiQuery, rows: list[dict[str, Any]]) -> list[str]:
    if query.columns is not None:
        names = list(dict.fromkeys(query.columns))
    else:
        names = list(dict.fromkeys(key for row in rows[:1] for key in row))
        if any(set(row) != set(names) for row in rows[1:]):
            raise invalid_body("All object keys must match")
    for name in names:
        if name not in table.columns:
            raise column_not_found(table.name, name)
    return names


def _returning(table: Table, mode: str) -> sql.Composable:
    if mode == "representation":
        return sql.SQL("{}.*").format(_relation(table))
    if mode == "headers-only" and table.primary_key:
        return sql.SQL(", ").join(
            sql.SQL("{}.{}").format(_relation(table), sql.Identifier(c)) for c in table.primary_key
        )
    return sql.SQL("1")


def _projection(
    table: Table,
    query: ApiQuery,
    mode: str,
    bind: Binder,
    cat: Catalogue | None,
    *,
    explicit_star: bool,
) -> sql.Composable:
    """The select list over `pgrst_mutation`, with its embeds' lateral joins after FROM."""
    if mode == "representation":
        if cat is None:
            items = select_list(query.select, Target(table.name, table.columns), bind)
            return sql.SQL("{} FROM pgrst_mutation").format(items)
        source = sql.Identifier("pgrst_mutation")
        qualified = has_embeds(query.select) or explicit_star
        target = Target(table.name, table.columns, source if qualified else None)
        planned = project(cat, table.name, target, query, bind, explicit_star=explicit_star)
        return sql.SQL("{} FROM pgrst_mutation{}{}").format(
            planned.select, planned.joins, planned.group
        )
    if mode == "headers-only" and table.primary_key:
        columns = sql.SQL(", ").join(sql.Identifier(c) for c in table.primary_key)
        return sql.SQL("{} FROM pgrst_mutation").format(columns)
    return sql.SQL("1 FROM pgrst_mutation")


def _finish(
    mutation: sql.Composable,
    table: Table,
    query: ApiQuery,
    mode: str,
    bind: Binder,
    *,
    singular: bool,
    cat: Catalogue | None = None,
    upsert: bool = False,
    csv: bool = False,
) -> Statement:
    """The mutation in a CTE, then PostgREST's result row over it. For an upsert, the
    mutation also returns whether each row was inserted (`xmax = 0`) or updated."""
    with_body = mode != "minimal" and not (mode == "headers-only" and not table.primary_key)
    returning = _returning(table, mode)
    if upsert:
        returning = sql.SQL("{}, ({}.xmax = 0) AS pgrst_inserted").format(
            returning, _relation(table)
        )
    stmt = sql.SQL(
        "WITH pgrst_mutation AS ({} RETURNING {}), pgrst_source AS (SELECT {}) {}"
    ).format(
        mutation,
        returning,
        _projection(table, query, mode, bind, cat, explicit_star=upsert),
        result_select(
            total=sql.SQL("NULL::bigint"),
            singular=singular or mode == "headers-only",
            scalar=False,
            with_body=with_body,
            csv=csv,
            inserted=sql.SQL(
                "(SELECT pg_catalog.count(*) FROM pgrst_mutation WHERE pgrst_inserted)"
            )
            if upsert
            else None,
        ),
    )
    return Statement(stmt, bind.params)


def insert_statement(
    table: Table,
    query: ApiQuery,
    body: Body,
    *,
    mode: str,
    resolution: str | None,
    missing_default: bool,
    singular: bool,
    cat: Catalogue | None = None,
    csv: bool = False,
    put_keys: dict[str, str] | None = None,
) -> Statement:
    """INSERT (upsert with `resolution`). `put_keys` (PUT's primary-key filters): the row is
    inserted only if its key equals the URL's, so a mismatch affects no row (PGRST115)."""
    value = body.value
    if not isinstance(value, (dict, list)) or any(not isinstance(r, dict) for r in body.rows):
        raise invalid_body()
    rows = body.rows
    names = _columns_for(table, query, rows)
    bind = Binder()
    rel = _relation(table)
    array_text = body.text if isinstance(value, list) else f"[{body.text}]"
    payload = bind(array_text)
    cols = sql.SQL(", ").join(sql.Identifier(n) for n in names)
    if missing_default and names:
        source = _with_defaults(table, rel, payload, names, cols)
    else:
        source = sql.SQL(
            "SELECT {} FROM json_populate_recordset(NULL::{}, {}::json) pgrst_body{}"
        ).format(cols if names else sql.SQL(""), rel, payload, _put_match(table, put_keys, bind))
    target = sql.SQL("{} ({})").format(rel, cols) if names else rel
    mutation = sql.SQL("INSERT INTO {} {}{}").format(
        target, source, _on_conflict(table, query, names, resolution)
    )
    upsert = resolution == "merge-duplicates" and bool(names)
    return _finish(
        mutation, table, query, mode, bind, singular=singular, cat=cat, upsert=upsert, csv=csv
    )


def put_keys(table: Table, query: ApiQuery) -> dict[str, str]:
    """PUT's filters: exactly the primary key's columns, each `eq` (else PGRST105)."""
    keys: dict[str, str] = {}
    for cond in query.where:
        if (
            not isinstance(cond, Filter)
            or cond.op != "eq"
            or cond.negate
            or cond.modifier
            or cond.field.json_path
            or cond.field.name in keys
            or not isinstance(cond.value, str)
        ):
            raise invalid_put_filters()
        keys[cond.field.name] = cond.value
    if not table.primary_key or set(keys) != set(table.primary_key):
        raise invalid_put_filters()
    return keys


def _put_match(table: Table, keys: dict[str, str] | None, bind: Binder) -> sql.Composable:
    if not keys:
        return sql.SQL("")
    # Type names come from format_type() in the catalogue, never from the request.
    return sql.SQL(" WHERE {}").format(
        sql.SQL(" AND ").join(
            sql.SQL("pgrst_body.{} = CAST({} AS {})").format(
                sql.Identifier(k), bind(v), sql.SQL(table.columns[k].type)
            )
            for k, v in keys.items()
        )
    )


def _with_defaults(
    table: Table,
    rel: sql.Composable,
    payload: sql.Composable,
    names: list[str],
    cols: sql.Composable,
) -> sql.Composable:
    """`Prefer: missing=default` as PostgREST builds it (`fromJsonBodyF`): every row is merged
    over an object of the columns' defaults, so each default (a sequence's `nextval` too) is
    evaluated once per row, also where the row has the key."""
    defaults = [
        sql.SQL("{}, {}").format(sql.Literal(n), sql.SQL(default))  # SQL from the catalogue
        for n in names
        if (default := table.columns[n].default) is not None
    ]
    return sql.SQL(
        "SELECT {cols} FROM (SELECT {payload}::jsonb AS json_data) pgrst_payload, "
        "LATERAL (SELECT jsonb_agg(jsonb_build_object({defaults}) || elem) AS val "
        "FROM jsonb_array_elements(pgrst_payload.json_data) elem) pgrst_json_defs, "
        "LATERAL jsonb_populate_recordset(NULL::{rel}, pgrst_json_defs.val) pgrst_body"
    ).format(cols=cols, payload=payload, defaults=sql.SQL(", ").join(defaults), rel=rel)


def _on_conflict(
    table: Table, query: ApiQuery, names: list[str], resolution: str | None
) -> sql.Composable:
    if resolution is None:
        return sql.SQL("")
    conflict = list(query.on_conflict or table.primary_key)
    for name in conflict:
        if name not in table.columns:
            raise undefined_column(table.name, name)
    if not conflict:
        if resolution == "ignore-duplicates":
            return sql.SQL(" ON CONFLICT DO NOTHING")
        raise RestError(
            400,
            "42P10",
            "there is no unique or exclusion constraint matching the ON CONFLICT specification",
        )
    target = sql.SQL(", ").join(sql.Identifier(c) for c in conflict)
    if resolution == "ignore-duplicates" or not names:
        return sql.SQL(" ON CONFLICT ({}) DO NOTHING").format(target)
    updates = sql.SQL(", ").join(
        sql.SQL("{} = EXCLUDED.{}").format(sql.Identifier(n), sql.Identifier(n)) for n in names
    )
    return sql.SQL(" ON CONFLICT ({}) DO UPDATE SET {}").format(target, updates)


def _limited(table: Table, query: ApiQuery, where: sql.Composable, bind: Binder) -> sql.Composable:
    """`limit`/`offset` on PATCH/DELETE: restrict to the ctids of the first rows in `order`."""
    if query.limit is None and query.offset is None:
        return where
    if not table.has_ctid:
        raise RestError(
            400, "PGRST100", "limit/offset on PATCH or DELETE needs a table, not a view"
        )
    rel = _relation(table)
    target = Target(table.name, table.columns, rel)
    inner = sql.SQL("SELECT {}.ctid FROM {} WHERE {} {} {}").format(
        rel,
        rel,
        where_clause(query.where, target, bind),
        order_clause(query.order, target, bind),
        page_clause(query.limit, query.offset, bind),
    )
    return sql.SQL("{} AND {}.ctid = ANY(ARRAY({}))").format(where, rel, inner)


def update_statement(
    table: Table,
    query: ApiQuery,
    body: Body,
    *,
    mode: str,
    singular: bool,
    cat: Catalogue | None = None,
    csv: bool = False,
) -> Statement | None:
    """None when the body sets no column (PostgREST then changes nothing)."""
    if not isinstance(body.value, dict):
        raise invalid_body()
    names = _columns_for(table, query, [body.value])
    if query.columns is not None:
        names = [n for n in names if n in body.value]
    if not names:
        return None
    bind = Binder()
    rel = _relation(table)
    target = Target(table.name, table.columns, rel)
    sets = sql.SQL(", ").join(
        sql.SQL("{} = pgrst_body.{}").format(sql.Identifier(n), sql.Identifier(n)) for n in names
    )
    where = _limited(table, query, where_clause(query.where, target, bind), bind)
    mutation = sql.SQL(
        "UPDATE {} SET {} FROM (SELECT * FROM json_populate_record(NULL::{}, {}::json)) pgrst_body "
        "WHERE {}"
    ).format(rel, sets, rel, bind(body.text), where)
    return _finish(mutation, table, query, mode, bind, singular=singular, cat=cat, csv=csv)


def delete_statement(
    table: Table,
    query: ApiQuery,
    *,
    mode: str,
    singular: bool,
    cat: Catalogue | None = None,
    csv: bool = False,
) -> Statement:
    bind = Binder()
    rel = _relation(table)
    target = Target(table.name, table.columns, rel)
    where = _limited(table, query, where_clause(query.where, target, bind), bind)
    mutation = sql.SQL("DELETE FROM {} WHERE {}").format(rel, where)
    return _finish(mutation, table, query, mode, bind, singular=singular, cat=cat, csv=csv)
