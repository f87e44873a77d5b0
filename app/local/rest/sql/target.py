"""Bound values, the targets names resolve against, and a column reference on one."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from psycopg import sql

from app.local.rest.errors import undefined_column
from app.local.rest.schema import Column
from app.local.rest.syntax import Field


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
    """A planned select list (`embed`): what goes after SELECT, the lateral joins after
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
