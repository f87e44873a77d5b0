"""The query AST → `psycopg.sql.Composed`, checked against the schema cache.

Every identifier is first looked up in the catalogue (unknown → PostgREST's error) and then quoted
with `sql.Identifier`; every value is a bound parameter. The only SQL text that is not a constant
of this module is a type name from `format_type()` in the catalogue (RPC argument types), never
anything from the request. Statements have PostgREST's shape: the rows in a `pgrst_source` CTE,
then one row with the total (when counted), the page size and the JSON body built by PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from psycopg import sql

from app.local.rest.errors import RestError, no_relationship, not_embedded, undefined_column
from app.local.rest.schema import MAX_ROWS, Column
from app.local.rest.syntax import (
    ApiQuery,
    Condition,
    Field,
    Filter,
    Logic,
    OrderTerm,
    SelectEmbed,
    SelectField,
    SelectItem,
    SelectStar,
)

_OPERATORS = {
    "eq": "=",
    "neq": "<>",
    "gt": ">",
    "gte": ">=",
    "lt": "<",
    "lte": "<=",
    "like": "LIKE",
    "ilike": "ILIKE",
    "match": "~",
    "imatch": "~*",
    "isdistinct": "IS DISTINCT FROM",
    "cs": "@>",
    "cd": "<@",
    "ov": "&&",
    "sl": "<<",
    "sr": ">>",
    "nxr": "&<",
    "nxl": "&>",
    "adj": "-|-",
}
_IS = {
    "null": "IS NULL",
    "not_null": "IS NOT NULL",
    "true": "IS TRUE",
    "false": "IS FALSE",
    "unknown": "IS UNKNOWN",
}
_TSQUERY = {
    "fts": "to_tsquery",
    "plfts": "plainto_tsquery",
    "phfts": "phraseto_tsquery",
    "wfts": "websearch_to_tsquery",
}
# `select=col::type`: only these type names are accepted; the SQL comes from this table.
_CASTS = {
    name: name
    for name in (
        "text",
        "varchar",
        "char",
        "int",
        "int2",
        "int4",
        "int8",
        "integer",
        "smallint",
        "bigint",
        "numeric",
        "decimal",
        "real",
        "float4",
        "float8",
        "float",
        "double precision",
        "boolean",
        "bool",
        "json",
        "jsonb",
        "uuid",
        "date",
        "time",
        "timetz",
        "timestamp",
        "timestamptz",
        "interval",
        "bytea",
        "money",
        "inet",
        "cidr",
        "tsvector",
    )
}


class Binder:
    """Named placeholders (`%(pN)s`) so a fragment can be used twice with one set of values."""

    def __init__(self) -> None:
        self.params: dict[str, Any] = {}

    def __call__(self, value: Any) -> sql.Placeholder:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return sql.Placeholder(name)


@dataclass(frozen=True)
class EmbedRef:
    """An embedded resource as its parent's filters and orders see it."""

    alias: sql.Identifier  # the lateral subquery
    to_one: bool
    labels: tuple[str, ...]  # its output keys

    def is_null(self) -> sql.Composable:
        """`embed=is.null`: no related row (PostgREST's null-embed filter)."""
        if self.to_one:
            return sql.SQL("({} IS NOT DISTINCT FROM NULL)").format(self.alias)
        return sql.SQL("({}.{} IS NULL)").format(self.alias, self.alias)


@dataclass(frozen=True)
class Target:
    """What column names resolve against: a table, a function result or a CTE of either."""

    name: str  # for error messages, as PostgREST would name it
    columns: dict[str, Column]
    qualifier: sql.Composable | None = None
    embeds: dict[str, EmbedRef] = field(default_factory=dict)
    # Computed fields: functions of the row type (`blurb(messages)`), as their call on this row.
    computed: dict[str, sql.Composable] = field(default_factory=dict)
    row: sql.Composable | None = None  # the whole row, for computed fields and relationships


@dataclass
class Projection:
    """A planned select list (`rest_embed`): what goes after SELECT, the lateral joins after
    FROM, the GROUP BY for aggregates, and the target filters and orders resolve in."""

    select: sql.Composable
    joins: sql.Composable
    group: sql.Composable
    target: Target
    labels: tuple[str, ...]


@dataclass
class Statement:
    query: sql.Composed
    params: dict[str, Any] = field(default_factory=dict)
    explain: sql.Composed | None = None  # `EXPLAIN (FORMAT JSON)` of the count, same params


def with_computed(target: Target, functions: dict[str, str], row: str) -> Target:
    """`target` plus the computed fields of its table (function name → schema), called on the
    whole row named `row` (the FROM item's alias, or the table's own name)."""
    calls: dict[str, sql.Composable] = {
        name: sql.SQL("{}({})").format(sql.Identifier(schema, name), sql.Identifier(row))
        for name, schema in functions.items()
    }
    return Target(
        target.name, target.columns, target.qualifier, target.embeds, calls, sql.Identifier(row)
    )


# --- expressions -----------------------------------------------------------------------------
def column(f: Field, target: Target, bind: Binder) -> sql.Composable:
    expr: sql.Composable
    if f.name not in target.columns:
        if f.name not in target.computed:
            raise undefined_column(target.name, f.name)
        expr = target.computed[f.name]
    else:
        ident = sql.Identifier(f.name)
        expr = sql.SQL(".").join([target.qualifier, ident]) if target.qualifier else ident
    for step in f.json_path:
        key = step.key
        index = key.lstrip("-").isdigit()
        value = (
            sql.SQL("{}::integer").format(bind(key))
            if index
            else sql.SQL("{}::text").format(bind(key))
        )
        expr = sql.SQL("({} {} {})").format(expr, sql.SQL(step.arrow), value)
    return expr


def select_list(items: Iterable[SelectItem], target: Target, bind: Binder) -> sql.Composable:
    parts: list[sql.Composable] = []
    for item in items:
        if isinstance(item, SelectStar):
            parts.append(
                sql.SQL("{}.*").format(target.qualifier) if target.qualifier else sql.SQL("*")
            )
        elif isinstance(item, SelectEmbed):
            raise no_relationship(target.name, item.name)  # `rest_embed` plans embeds first
        else:
            parts.append(_select_field(item, target, bind))
    return sql.SQL(", ").join(parts)


def _cast(expr: sql.Composable, cast: str | None) -> sql.Composable:
    if cast is None:
        return expr
    known = _CASTS.get(" ".join(cast.lower().split()))
    if known is None:
        raise RestError(400, "42704", f'type "{cast}" does not exist')
    return sql.SQL("CAST({} AS {})").format(expr, sql.SQL(known))


def is_legacy_count(item: SelectField, target: Target) -> bool:
    """`select=count` / `messages(count)`: PostgreSQL reads `t.count` as `count(t)`."""
    return (
        item.aggregate is None
        and item.field.name == "count"
        and not item.field.json_path
        and "count" not in target.columns
    )


def field_expression(item: SelectField, target: Target, bind: Binder) -> sql.Composable:
    """The value of a select field, without its label."""
    if is_legacy_count(item, target):
        return _cast(sql.SQL("pg_catalog.count(*)"), item.cast)
    if item.aggregate is not None:
        inner = (
            sql.SQL("*")
            if item.field.name == "*" and not item.field.json_path
            else _cast(column(item.field, target, bind), item.cast)
        )
        return _cast(
            sql.SQL("{}({})").format(sql.SQL(item.aggregate.upper()), inner), item.agg_cast
        )
    return _cast(column(item.field, target, bind), item.cast)


def field_label(item: SelectField) -> str:
    if item.alias:
        return item.alias
    if item.aggregate is not None:
        return item.aggregate
    return item.field.output_name or item.field.name  # `col->""` has no key name


def _select_field(item: SelectField, target: Target, bind: Binder) -> sql.Composable:
    expr = field_expression(item, target, bind)
    return sql.SQL("{} AS {}").format(expr, sql.Identifier(field_label(item)))


def condition(cond: Condition, target: Target, bind: Binder) -> sql.Composable:
    if isinstance(cond, Logic):
        joiner = sql.SQL(" OR ") if cond.op == "or" else sql.SQL(" AND ")
        inner = sql.SQL("({})").format(
            joiner.join(condition(c, target, bind) for c in cond.children)
        )
        return sql.SQL("NOT {}").format(inner) if cond.negate else inner
    expr = _filter(cond, target, bind)
    return sql.SQL("NOT ({})").format(expr) if cond.negate else expr


def _filter(f: Filter, target: Target, bind: Binder) -> sql.Composable:
    embed = target.embeds.get(f.field.name) if not f.field.json_path else None
    if embed is not None and f.field.name not in target.columns:
        if f.op != "is" or f.value != "null":
            raise RestError(
                400,
                "PGRST120",
                f"Bad operator on the '{f.field.name}' embedded resource",
                "Only is null or not is null filters are allowed on embedded resources",
            )
        return embed.is_null()
    col = column(f.field, target, bind)
    if f.op == "in":
        assert isinstance(f.value, tuple)
        if not f.value:
            return sql.SQL("FALSE")
        return sql.SQL("{} IN ({})").format(col, sql.SQL(", ").join(bind(v) for v in f.value))
    assert isinstance(f.value, str)
    if f.op == "is":
        return sql.SQL("{} {}").format(col, sql.SQL(_IS[f.value]))
    if f.op in _TSQUERY:
        return _full_text(f, col, target, bind)
    value = f.value.replace("*", "%") if f.op in ("like", "ilike") else f.value
    op = sql.SQL(_OPERATORS[f.op])
    if f.modifier in ("any", "all"):
        quant = sql.SQL("ANY" if f.modifier == "any" else "ALL")
        return sql.SQL("{} {} {}({})").format(col, op, quant, bind(value))
    return sql.SQL("{} {} {}").format(col, op, bind(value))


def _full_text(f: Filter, col: sql.Composable, target: Target, bind: Binder) -> sql.Composable:
    lang = sql.SQL("{}::regconfig, ").format(bind(f.modifier)) if f.modifier else sql.SQL("")
    query = sql.SQL("{}({}{})").format(sql.SQL(_TSQUERY[f.op]), lang, bind(f.value))
    is_vector = not f.field.json_path and target.columns[f.field.name].base == "tsvector"
    vector = col if is_vector else sql.SQL("to_tsvector({}{})").format(lang, col)
    return sql.SQL("{} @@ {}").format(vector, query)


def where_clause(conds: Iterable[Condition], target: Target, bind: Binder) -> sql.Composable:
    parts = [condition(c, target, bind) for c in conds]
    return sql.SQL(" AND ").join(parts) if parts else sql.SQL("TRUE")


def order_clause(terms: Iterable[OrderTerm], target: Target, bind: Binder) -> sql.Composable:
    parts = []
    for term in terms:
        nulls = {"first": " NULLS FIRST", "last": " NULLS LAST", None: ""}[term.nulls]
        direction = " DESC" if term.desc else " ASC"
        expr = (
            _related(term, target, bind)
            if term.relation is not None
            else column(term.field, target, bind)
        )
        parts.append(sql.SQL("{}{}").format(expr, sql.SQL(direction + nulls)))
    return sql.SQL("ORDER BY {}").format(sql.SQL(", ").join(parts)) if parts else sql.SQL("")


def _related(term: OrderTerm, target: Target, bind: Binder) -> sql.Composable:
    """`order=users(name)`: a column of a to-one embedded resource."""
    assert term.relation is not None
    embed = target.embeds.get(term.relation)
    if embed is None:
        raise not_embedded(term.relation)
    if not embed.to_one:
        raise RestError(
            400,
            "PGRST118",
            f"A related order on '{term.relation}' is not possible",
            f"'{target.name}' and '{term.relation}' do not form a many-to-one or one-to-one "
            "relationship",
        )
    if term.field.name not in embed.labels:
        raise undefined_column(term.relation, term.field.name)
    return column(
        term.field, Target(term.relation, {term.field.name: Column("", "", "")}, embed.alias), bind
    )


def page_clause(limit: int | None, offset: int | None, bind: Binder) -> sql.Composable:
    lim = bind(limit) if limit is not None else sql.SQL("ALL")
    return sql.SQL("LIMIT {} OFFSET {}").format(lim, bind(offset or 0))


# --- the final SELECT over pgrst_source -----------------------------------------------------
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
) -> Statement:
    """A read of `source` (a relation, or a materialized RPC result) with filters and paging;
    `projection` (from `rest_embed`, built with the same binder) replaces the plain select."""
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
            counted, sql.Literal(MAX_ROWS + 1)
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
        result_select(total=total, singular=singular, scalar=scalar, with_body=with_body, csv=csv),
    )
    explain = None
    if count in ("planned", "estimated"):
        prefix = sql.SQL("WITH {} ").format(prelude) if prelude is not None else sql.SQL("")
        explain = sql.SQL("EXPLAIN (FORMAT JSON) {}{}").format(prefix, counted)
    return Statement(stmt, bind.params, explain)
