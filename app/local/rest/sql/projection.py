"""Select lists: fields, casts (from a fixed table), aggregates and their labels."""

from __future__ import annotations

from collections.abc import Iterable

from psycopg import sql

from app.local.rest.errors import RestError, no_relationship
from app.local.rest.sql.target import Binder, Target, column
from app.local.rest.syntax import SelectEmbed, SelectField, SelectItem, SelectStar

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


def select_list(items: Iterable[SelectItem], target: Target, bind: Binder) -> sql.Composable:
    parts: list[sql.Composable] = []
    for item in items:
        if isinstance(item, SelectStar):
            parts.append(
                sql.SQL("{}.*").format(target.qualifier) if target.qualifier else sql.SQL("*")
            )
        elif isinstance(item, SelectEmbed):
            raise no_relationship(target.name, item.name)  # `embed` plans embeds first
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
