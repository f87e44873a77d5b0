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


def resolve(cat: Catalogue, name: str, arg_names: set[str], *, whole_body: bool) -> Function:
    """The one function called `name` whose arguments fit `arg_names`; else PGRST202/203.

    `whole_body`: the request has a body that could go to a single unnamed json/jsonb argument.
    """
    candidates = cat.functions.get(name, [])
    named: list[Function] = []
    unnamed_json: list[Function] = []
    for fn in candidates:
        if fn.single_unnamed_json:
            if whole_body:
                unnamed_json.append(fn)
            continue
        if any(not a.name for a in fn.inputs):
            continue
        names = {a.name for a in fn.inputs}
        required = {a.name for a in fn.inputs if not a.has_default}
        if required <= arg_names <= names:
            named.append(fn)
    if len(named) > 1:
        exact = [fn for fn in named if len(fn.inputs) == len(arg_names)]
        named = exact if len(exact) == 1 else named
    matches = named or unnamed_json
    if not matches:
        hint = None if candidates else cat.function_hint(name)
        raise function_not_found(name, sorted(arg_names), hint, cat.schema)
    if len(matches) > 1:
        raise ambiguous_function([fn.signature() for fn in matches])
    return matches[0]


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
) -> Statement:
    fn = call.function
    bind = Binder()
    proc = sql.Identifier(fn.schema, fn.name)
    args_from: sql.Composable
    if fn.single_unnamed_json and call.args_json is not None:
        cast = sql.SQL(fn.inputs[0].type)  # "json" or "jsonb", checked by single_unnamed_json
        args_from = sql.SQL("")
        invocation = sql.SQL("{}({}::{})").format(proc, bind(call.args_json), cast)
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
    target = Target(fn.name, fn.columns, sql.Identifier("pgrst_call"))
    origin = fn.return_type.removeprefix(f"{cat.schema}.")
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
    )
