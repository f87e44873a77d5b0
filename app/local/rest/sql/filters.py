"""WHERE: filters and their `and`/`or`/`not` trees, with PostgREST's operators."""

from __future__ import annotations

from collections.abc import Iterable

from psycopg import sql

from app.local.rest.errors import RestError
from app.local.rest.sql.target import Binder, Target, column
from app.local.rest.syntax import Condition, Filter, Logic

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
