"""ORDER BY (own columns and to-one embeds) and LIMIT/OFFSET."""

from __future__ import annotations

from collections.abc import Iterable

from psycopg import sql

from app.local.rest.errors import RestError, not_embedded, undefined_column
from app.local.rest.schema import Column
from app.local.rest.sql.target import Binder, Target, column
from app.local.rest.syntax import OrderTerm


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
