"""The read statement: rows in `pgrst_source`, then one row of total, page size and body."""

from __future__ import annotations

from psycopg import sql

from app.local.rest.schema import MAX_ROWS
from app.local.rest.sql.filters import where_clause
from app.local.rest.sql.order import order_clause, page_clause
from app.local.rest.sql.projection import select_list
from app.local.rest.sql.target import Binder, Projection, Statement, Target
from app.local.rest.syntax import ApiQuery

_CSV_HEADER = sql.SQL(
    "(SELECT coalesce(string_agg(pgrst_k, ','), '') FROM (SELECT json_object_keys(pgrst_r)"
    " AS pgrst_k FROM (SELECT row_to_json(pgrst_h) AS pgrst_r FROM pgrst_source pgrst_h"
    " LIMIT 1) pgrst_s) pgrst_a)"
)
# A row's composite text without its parentheses is PostgREST's CSV line (quoting included).
_CSV_BODY = sql.SQL(
    "coalesce(string_agg(substring(_postgrest_t::text, 2, length(_postgrest_t::text) - 2),"
    " E'\\n'), '')"
)


def result_select(
    *,
    total: sql.Composable,
    singular: bool,
    scalar: bool,
    with_body: bool,
    csv: bool = False,
    geojson: bool = False,
    inserted: sql.Composable | None = None,
) -> sql.Composable:
    """`total, page_total, body, inserted, response_headers, response_status` over
    `pgrst_source`, the way PostgREST
    aggregates rows (JSON, or CSV for `Accept: text/csv`)."""
    value = sql.SQL("_postgrest_t.pgrst_scalar" if scalar else "_postgrest_t")
    body: sql.Composable
    if not with_body:
        body = sql.SQL("NULL::text")
    elif csv:
        body = sql.SQL("{} || E'\\n' || {}").format(_CSV_HEADER, _CSV_BODY)
    elif geojson:  # PostgREST's `asGeoJsonF`
        body = sql.SQL(
            "json_build_object('type', 'FeatureCollection', 'features',"
            " coalesce(json_agg(ST_AsGeoJSON(_postgrest_t)::json), '[]'))::text"
        )
    elif singular:
        body = sql.SQL("coalesce((json_agg({})->0)::text, 'null')").format(value)
    else:
        body = sql.SQL("coalesce(json_agg({}), '[]')::text").format(value)
    extra = sql.SQL(
        ", {} AS inserted, nullif(current_setting('response.headers', true), '')"
        " AS response_headers, nullif(current_setting('response.status', true), '')"
        " AS response_status"
    ).format(inserted if inserted is not None else sql.SQL("NULL::bigint"))
    return sql.SQL(
        "SELECT {} AS total, pg_catalog.count(*) AS page_total, {} AS body{} "
        "FROM (SELECT * FROM pgrst_source) _postgrest_t"
    ).format(total, body, extra)


def read_statement(
    source: sql.Composable,
    target: Target,
    query: ApiQuery,
    *,
    limit: int | None,
    offset: int | None,
    count: bool | str,
    singular: bool,
    with_body: bool,
    scalar: bool = False,
    prelude: sql.Composable | None = None,
    binder: Binder | None = None,
    projection: Projection | None = None,
    csv: bool = False,
    geojson: bool = False,
    max_rows: int = MAX_ROWS,
) -> Statement:
    """A read of `source` (a relation, or a materialized RPC result) with filters and paging;
    `projection` (from `embed`, built with the same binder) replaces the plain select."""
    bind = binder or Binder()
    joins: sql.Composable = sql.SQL("")
    group: sql.Composable = sql.SQL("")
    items: sql.Composable
    if projection is not None:
        items, joins, group = projection.select, projection.joins, projection.group
        target = projection.target
    elif scalar:
        items = sql.SQL("pgrst_scalar")
    else:
        items = select_list(query.select, target, bind)
    where = where_clause(query.where, target, bind)
    counted = sql.SQL("SELECT 1 FROM {}{} WHERE {}{}").format(source, joins, where, group)
    if count == "planned":
        total: sql.Composable = sql.SQL("NULL::bigint")
    elif count == "estimated":  # exact up to max-rows, then the planner's estimate
        total = sql.SQL("(SELECT pg_catalog.count(*) FROM ({} LIMIT {}) pgrst_counted)").format(
            counted, sql.Literal(max_rows + 1)
        )
    elif count:
        total = sql.SQL("(SELECT pg_catalog.count(*) FROM ({}) pgrst_counted)").format(counted)
    else:
        total = sql.SQL("NULL::bigint")
    ctes = [prelude] if prelude is not None else []
    ctes.append(
        sql.SQL("pgrst_source AS (SELECT {} FROM {}{} WHERE {}{} {} {})").format(
            items,
            source,
            joins,
            where,
            group,
            order_clause(query.order, target, bind),
            page_clause(limit, offset, bind),
        )
    )
    stmt = sql.SQL("WITH {} {}").format(
        sql.SQL(", ").join(ctes),
        result_select(
            total=total,
            singular=singular,
            scalar=scalar,
            with_body=with_body,
            csv=csv,
            geojson=geojson,
        ),
    )
    explain = None
    if count in ("planned", "estimated"):
        prefix = sql.SQL("WITH {} ").format(prelude) if prelude is not None else sql.SQL("")
        explain = sql.SQL("EXPLAIN (FORMAT JSON) {}{}").format(prefix, counted)
    return Statement(stmt, bind.params, explain)
