"""Resource embedding: a select list with embedded resources → one SQL statement.

Each embedded resource becomes a `LEFT JOIN LATERAL` (or `INNER` for `!inner`) subquery of its
parent, correlated through the relationship's columns (`relations`), the way PostgREST's
query builder nests them: a to-one embed is `row_to_json(<lateral>.*)`, a to-many one
`json_agg` over the lateral rows (`'[]'` when there are none), a spread lifts the embed's keys
into its parent. Filters, logic trees, order and range given for an embed path
(`messages.order=…`) apply inside its subquery. Everything runs in the request's one
statement, under the request's role, so RLS filters embedded rows like top-level ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from psycopg import sql

from app.local.rest.disambiguation import find
from app.local.rest.errors import RestError, not_embedded
from app.local.rest.relations import Relationship
from app.local.rest.schema import Catalogue
from app.local.rest.sql.filters import where_clause
from app.local.rest.sql.order import order_clause, page_clause
from app.local.rest.sql.projection import field_expression, field_label, is_legacy_count
from app.local.rest.sql.target import Binder, EmbedRef, Projection, Target, with_computed
from app.local.rest.syntax import (
    ApiQuery,
    EmbedParams,
    EmbedPath,
    SelectEmbed,
    SelectField,
    SelectItem,
    SelectStar,
)


def has_embeds(items: tuple[SelectItem, ...]) -> bool:
    return any(isinstance(i, SelectEmbed) for i in items)


def has_aggregates(items: tuple[SelectItem, ...]) -> bool:
    """Aggregate functions anywhere in the tree (the legacy bare `count` is not one)."""
    for item in items:
        if isinstance(item, SelectField) and item.aggregate is not None:
            return True
        if isinstance(item, SelectEmbed) and has_aggregates(item.items):
            return True
    return False


def check_aggregates(cat: Catalogue, query: ApiQuery) -> None:
    """PGRST123 unless `pgrst.db_aggregates_enabled` is set on the authenticator role."""
    if not cat.aggregates_enabled and has_aggregates(query.select):
        raise RestError(400, "PGRST123", "Use of aggregate functions is not allowed")


@dataclass
class _Context:
    cat: Catalogue
    params: dict[EmbedPath, EmbedParams]
    bind: Binder
    used: set[EmbedPath] = field(default_factory=set)
    explicit_star: bool = False


def project(
    cat: Catalogue,
    origin: str,
    target: Target,
    query: ApiQuery,
    bind: Binder,
    *,
    explicit_star: bool = False,
) -> Projection:
    """The select list of `origin` (columns as in `target`) with its embeds planned.

    `target.qualifier` must name the caller's FROM item whenever the select has embeds.
    `explicit_star`: `*` lists the target's columns (the FROM item has hidden extra ones).
    """
    ctx = _Context(cat, dict(query.embedded), bind, explicit_star=explicit_star)
    projection = _project(ctx, origin, target, query.select, ())
    for path in ctx.params:
        if path not in ctx.used:
            raise not_embedded(_first_unknown(path, ctx.used))
    return projection


def _first_unknown(path: EmbedPath, used: set[EmbedPath]) -> str:
    for i in range(1, len(path) + 1):
        if path[:i] not in used:
            return path[i - 1]
    return path[-1]


def _project(
    ctx: _Context,
    origin: str,
    target: Target,
    items: tuple[SelectItem, ...],
    path: EmbedPath,
) -> Projection:
    selects: list[sql.Composable] = []
    joins: list[sql.Composable] = []
    labels: list[str] = []
    group: list[sql.Composable] = []
    embeds: dict[str, EmbedRef] = {}
    aggregated = False
    embedded_exprs: list[sql.Composable] = []
    # Inside an embed each key appears once (PostgreSQL would call a repeated one ambiguous
    # when a spread or a related order names it). The last one wins, as in PostgREST's output
    # read by a JSON parser: `*, first_user:users!first_user(*)` gives the embedded row.
    unique = bool(path)

    def add(expr: sql.Composable, label: str) -> None:
        select = sql.SQL("{} AS {}").format(expr, sql.Identifier(label))
        if unique and label in labels:
            selects[labels.index(label)] = select
            return
        selects.append(select)
        labels.append(label)

    for item in items:
        if isinstance(item, SelectEmbed):
            embedded = _embed(ctx, origin, target, item, path + (item.label,))
            joins.append(embedded.join)
            for expr, label in embedded.selects:
                add(expr, label)
                embedded_exprs.append(expr)
            embeds[item.label] = embedded.ref
        elif isinstance(item, SelectStar) and ((ctx.explicit_star and not path) or unique):
            for name in target.columns:
                add(_qualified(target, name), name)
                group.append(_qualified(target, name))
        elif isinstance(item, SelectStar):
            selects.append(
                sql.SQL("{}.*").format(target.qualifier) if target.qualifier else sql.SQL("*")
            )
            labels.extend(target.columns)
            group.extend(_qualified(target, c) for c in target.columns)
        else:
            expr = field_expression(item, target, ctx.bind)
            add(expr, field_label(item))
            if item.aggregate is not None or is_legacy_count(item, target):
                aggregated = True
            else:
                group.append(expr)
    group.extend(embedded_exprs)  # PostgREST groups by the embeds' values too
    grouping = (
        sql.SQL(" GROUP BY {}").format(sql.SQL(", ").join(group))
        if aggregated and group
        else sql.SQL("")
    )
    return Projection(
        sql.SQL(", ").join(selects),
        sql.SQL("").join(joins),
        grouping,
        Target(target.name, target.columns, target.qualifier, embeds, target.computed, target.row),
        tuple(labels),
    )


def _qualified(target: Target, name: str) -> sql.Composable:
    ident = sql.Identifier(name)
    return sql.SQL("{}.{}").format(target.qualifier, ident) if target.qualifier else ident


@dataclass
class _Embedded:
    join: sql.Composable
    selects: Sequence[tuple[sql.Composable, str]]  # (value, output key) for the parent
    ref: EmbedRef


def _embed(
    ctx: _Context, origin: str, parent: Target, item: SelectEmbed, path: EmbedPath
) -> _Embedded:
    cat = ctx.cat
    rel = find(cat.relationships, cat.schema, origin, item.name, item.hint)
    if item.spread and not rel.to_one and has_aggregates(item.items):
        raise RestError(
            400,
            "PGRST127",
            "Feature not implemented",
            "Aggregates are not implemented for one-to-many or many-to-many spreads.",
        )
    table = cat.tables.get(rel.foreign_table)
    if table is None:  # the relationship cache and the table list come from one load
        raise RestError(400, "PGRST200", f"Could not find the table '{rel.foreign_table}'")
    ctx.used.add(path)
    params = ctx.params.get(path, EmbedParams())
    # PostgREST's aliases (`<table>_<depth>`, `<origin>_<label>_<depth>`), so PostgreSQL's
    # own error messages read the same.
    depth = len(path)
    alias = sql.Identifier(f"{rel.foreign_table}_{depth}")
    agg = sql.Identifier(f"{origin}_{item.label}_{depth}")
    # Named by its alias, as PostgreSQL names it in "column messages_1.x does not exist".
    child = with_computed(
        Target(f"{rel.foreign_table}_{depth}", table.columns, alias),
        cat.computed.get(rel.foreign_table, {}),
        f"{rel.foreign_table}_{depth}",
    )
    inner = _project(ctx, rel.foreign_table, child, item.items, path)
    bind = ctx.bind
    relation: sql.Composable = sql.Identifier(cat.schema, rel.foreign_table)
    if rel.function is not None:  # computed: the function of the parent row is the source
        if parent.row is None:
            raise find_error_for_rows(cat, origin, item)
        relation = sql.SQL("{}({})").format(sql.Identifier(*rel.function), parent.row)
        conditions: list[sql.Composable] = []
    else:
        conditions = _join_conditions(rel, alias, parent, depth)
    from_items: list[sql.Composable] = [sql.SQL("{} AS {}").format(relation, alias)]
    if rel.junction is not None:
        junction_alias = conditions.pop()
        from_items.append(
            sql.SQL("{} AS {}").format(
                sql.Identifier(cat.schema, rel.junction.table), junction_alias
            )
        )
    where = [*conditions, where_clause(params.where, inner.target, bind)]
    subquery = sql.SQL("SELECT {} FROM {}{} WHERE {}{} {} {}").format(
        inner.select,
        sql.SQL(", ").join(from_items),
        inner.joins,
        sql.SQL(" AND ").join(where),
        inner.group,
        order_clause(params.order, inner.target, bind),
        page_clause(_capped(params.limit, ctx.cat.max_rows), params.offset, bind),
    )
    join_kind = sql.SQL(" INNER" if item.join == "inner" else " LEFT")
    empty = not item.items
    spread = [(sql.SQL("{}.{}").format(agg, sql.Identifier(k)), k) for k in inner.labels]
    if rel.to_one:
        join = sql.SQL("{} JOIN LATERAL ({}) AS {} ON TRUE").format(join_kind, subquery, agg)
        whole: list[tuple[sql.Composable, str]] = [
            (sql.SQL("row_to_json({}.*)::jsonb").format(agg), item.label)
        ]
        selects = spread if item.spread else ([] if empty else whole)
        return _Embedded(join, selects, EmbedRef(agg, True, inner.labels))
    on = sql.SQL("{}.{} IS NOT NULL").format(agg, agg) if item.join == "inner" else sql.SQL("TRUE")
    if item.spread:  # to-many: each key becomes the array of its values
        columns = [
            sql.SQL("COALESCE(json_agg({}.{}), '[]')::jsonb AS {}").format(
                agg, sql.Identifier(label), sql.Identifier(label)
            )
            for label in inner.labels
        ]
        lateral = sql.SQL("SELECT json_agg({})::jsonb AS {}{} FROM ({}) AS {}").format(
            agg, agg, sql.SQL("").join(sql.SQL(", {}").format(c) for c in columns), subquery, agg
        )
        join = sql.SQL("{} JOIN LATERAL ({}) AS {} ON {}").format(join_kind, lateral, agg, on)
        return _Embedded(join, spread, EmbedRef(agg, False, inner.labels))
    lateral = sql.SQL("SELECT json_agg({})::jsonb AS {} FROM ({}) AS {}").format(
        agg, agg, subquery, agg
    )
    join = sql.SQL("{} JOIN LATERAL ({}) AS {} ON {}").format(join_kind, lateral, agg, on)
    array = [(sql.SQL("COALESCE({}.{}, '[]')").format(agg, agg), item.label)]
    return _Embedded(join, [] if empty else array, EmbedRef(agg, False, inner.labels))


def find_error_for_rows(cat: Catalogue, origin: str, item: SelectEmbed) -> RestError:
    """A computed relationship needs the parent's own row type (not a mutation's CTE)."""
    return RestError(
        400,
        "PGRST200",
        f"Could not find a relationship between '{origin}' and '{item.name}' in the schema cache",
        f"Searched for a foreign key relationship between '{origin}' and '{item.name}' in the "
        f"schema '{cat.schema}', but no matches were found.",
    )


def _capped(limit: int | None, max_rows: int) -> int:
    return max_rows if limit is None else min(limit, max_rows)


def _join_conditions(
    rel: Relationship, alias: sql.Identifier, parent: Target, depth: int
) -> list[sql.Composable]:
    """Equalities tying the embedded rows to the parent row; for a many-to-many, the
    junction's alias comes last in the list (popped by the caller)."""
    if parent.qualifier is None:
        raise RestError(500, "PGRSTX00", "embedding needs a qualified parent")
    if rel.junction is None:
        return [
            sql.SQL("{}.{} = {}.{}").format(
                alias, sql.Identifier(tcol), parent.qualifier, sql.Identifier(ocol)
            )
            for ocol, tcol in rel.columns
        ]
    junction = sql.Identifier(f"{rel.junction.table}_{depth}_junction")
    conds: list[sql.Composable] = [
        sql.SQL("{}.{} = {}.{}").format(alias, sql.Identifier(tcol), junction, sql.Identifier(jcol))
        for tcol, jcol in rel.junction.target
    ]
    conds.extend(
        sql.SQL("{}.{} = {}.{}").format(
            junction, sql.Identifier(jcol), parent.qualifier, sql.Identifier(ocol)
        )
        for ocol, jcol in rel.junction.source
    )
    conds.append(junction)
    return conds
