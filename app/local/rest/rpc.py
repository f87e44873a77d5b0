"""`/rpc/<fn>`: choose the function by name and argument names, then build its call (§2.5).

Arguments reach PostgreSQL as one bound JSON object unpacked by `json_to_record` with the
argument types from the catalogue, and the call uses named notation, so overloads resolve by
name the way PostgREST resolves them. The result is materialized once, then filtered, ordered
and paged like a table, and shaped as a scalar, an object or an array.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql

from app.local.rest.embed import project
from app.local.rest.errors import ambiguous_function, function_not_found
from app.local.rest.schema import Catalogue, Function
from app.local.rest.sql.statement import read_statement
from app.local.rest.sql.target import Binder, Statement, Target
from app.local.rest.syntax import ApiQuery


@dataclass(frozen=True)
class Call:
    function: Function
    args_json: str | None  # the JSON object (or whole body for a json-argument function)
    arg_names: tuple[str, ...]


def resolve(cat: Catalogue, name: str, arg_names: set[str], *, post: bool) -> Function:
    """The one function called `name` whose arguments fit `arg_names`; else PGRST202/203.

    PostgREST's `findProc`: a function matches when the keys are its required arguments plus
    any of its optional ones (an unnamed argument's name is ""); only when none matches does a
    POST fall back to a function of one unnamed json/jsonb argument, which takes the body.
    """
    candidates = cat.functions.get(name, [])
    named: list[Function] = []
    fallback: list[Function] = []
    for fn in candidates:
        if _fits(fn, arg_names):
            named.append(fn)
        elif post and fn.single_unnamed_json:
            fallback.append(fn)
    matches = named or fallback
    if not matches:
        hint = None if candidates else cat.function_hint(name)
        raise function_not_found(name, sorted(arg_names), hint, cat.schema, post=post)
    if len(matches) > 1:
        # In the order of PostgREST's derived `Ord` on its routines: by their arguments.
        ordered = sorted(matches, key=lambda fn: [(a.name, a.type) for a in fn.inputs])
        raise ambiguous_function([fn.signature() for fn in ordered])
    return matches[0]


def _fits(fn: Function, arg_names: set[str]) -> bool:
    if not fn.inputs:
        return not arg_names
    names = {a.name for a in fn.inputs}
    required = {a.name for a in fn.inputs if not a.has_default}
    return required <= arg_names <= names


def rpc_statement(
    cat: Catalogue,
    call: Call,
    query: ApiQuery,
    *,
    limit: int | None,
    offset: int | None,
    count: bool | str,
    singular: bool,
    with_body: bool,
    csv: bool = False,
    geojson: bool = False,
) -> Statement:
    fn = call.function
    bind = Binder()
    proc = sql.Identifier(fn.schema, fn.name)
    args_from: sql.Composable
    unnamed = fn.single_unnamed
    if unnamed is not None and call.args_json is not None:
        # PostgREST's `OnePosParam`: the whole body, cast to the argument's type (one of the
        # types `Function.callable` allows, from the catalogue, never from the request).
        args_from = sql.SQL("")
        invocation = sql.SQL("{}({}::{})").format(proc, bind(call.args_json), sql.SQL(unnamed.type))
    elif call.arg_names:
        types = {a.name: a.type for a in fn.inputs}
        # Type names come from format_type() in the catalogue, never from the request.
        definitions = sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(types[n])) for n in call.arg_names
        )
        args_from = sql.SQL("json_to_record({}::json) AS pgrst_args({}), LATERAL ").format(
            bind(call.args_json), definitions
        )
        invocation = sql.SQL("{}({})").format(
            proc,
            sql.SQL(", ").join(
                sql.SQL("{} := pgrst_args.{}").format(sql.Identifier(n), sql.Identifier(n))
                for n in call.arg_names
            ),
        )
    else:
        args_from = sql.SQL("")
        invocation = sql.SQL("{}()").format(proc)
    scalar = not fn.returns_composite
    alias = sql.SQL("pgrst_call(pgrst_scalar)" if scalar else "pgrst_call")
    prelude = sql.SQL("pgrst_call AS MATERIALIZED (SELECT pgrst_call.* FROM {}{} AS {})").format(
        args_from, invocation, alias
    )
    origin = fn.return_type.removeprefix(f"{cat.schema}.")
    target = Target(
        fn.name,
        fn.columns,
        sql.Identifier("pgrst_call"),
        computed=_computed_on_result(cat, origin) if not scalar else {},
    )
    projection = (
        project(cat, origin if origin in cat.tables else fn.name, target, query, bind)
        if not scalar
        else None
    )
    if scalar and query.embedded:
        project(cat, fn.name, target, query, bind)  # PGRST108 for the embed paths
    return read_statement(
        sql.Identifier("pgrst_call"),
        target,
        query,
        limit=limit,
        offset=offset,
        count=count,
        singular=singular or not fn.returns_set,
        with_body=with_body and not fn.returns_void,
        scalar=scalar,
        prelude=prelude,
        binder=bind,
        projection=projection,
        csv=csv and fn.returns_set,
        geojson=geojson,
        max_rows=cat.max_rows,
    )


def _computed_on_result(cat: Catalogue, origin: str) -> dict[str, sql.Composable]:
    """The computed fields of the table a function returns rows of, called on each result row
    (PostgREST selects from the call itself, whose rows have the table's type; the
    materialized result's rows are records, so each is cast back to it)."""
    if origin not in cat.tables:
        return {}
    row_type = sql.Identifier(cat.schema, origin)
    return {
        name: sql.SQL("{}({}::{})").format(
            sql.Identifier(schema, name), sql.Identifier("pgrst_call"), row_type
        )
        for name, schema in cat.computed.get(origin, {}).items()
    }
