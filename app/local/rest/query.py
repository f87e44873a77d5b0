"""PostgREST's query-string grammar (wire reference §2.2) as a pure parser producing a small AST.

No SQL and no catalogue here: names stay names, values stay text. `sql` checks names
against the catalogue and binds values. Anything the grammar does not accept is a PGRST100
`RestError`, worded like PostgREST's parser errors.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from app.local.rest.cursor import MAX_DEPTH, Cursor
from app.local.rest.errors import invalid_range, not_embedded, parse_error
from app.local.rest.select import parse_select
from app.local.rest.syntax import (
    ApiQuery,
    Condition,
    EmbedParams,
    EmbedPath,
    Field,
    Filter,
    Logic,
    OrderTerm,
    SelectItem,
    SelectStar,
)

RESERVED = frozenset({"select", "order", "limit", "offset", "columns", "on_conflict"})
LOGIC_KEYS = {
    "or": ("or", False),
    "and": ("and", False),
    "not.or": ("or", True),
    "not.and": ("and", True),
}
COMPARE_OPS = {"eq", "neq", "gt", "gte", "lt", "lte"}
PATTERN_OPS = {"like", "ilike", "match", "imatch"}
QUANTIFIABLE = COMPARE_OPS | PATTERN_OPS
FTS_OPS = {"fts", "plfts", "phfts", "wfts"}
SIMPLE_OPS = {"isdistinct", "cs", "cd", "ov", "sl", "sr", "nxr", "nxl", "adj"}
OPERATORS = QUANTIFIABLE | FTS_OPS | SIMPLE_OPS | {"in", "is"}
IS_VALUES = ("null", "not_null", "true", "false", "unknown")
_INTEGER = re.compile(r"\d+")
_RANGE = re.compile(r"^\s*(?:items=)?(\d+)-(\d*)\s*$")


# --- filters ---
def parse_filter(key: str, value: str) -> Filter:
    """`key=op.value` at the top level of the query string."""
    path, flt = parse_scoped_filter(key, value)
    if path:
        raise not_embedded(path[0])
    return flt


def parse_scoped_filter(key: str, value: str) -> tuple[EmbedPath, Filter]:
    """`a.b.col=op.value`: a filter on the embedded resource at path (a, b)."""
    path, field = _filter_key(key)
    cur = Cursor(value, "filter")
    return path, _operation(cur, field, in_logic=False)


def _filter_key(key: str) -> tuple[EmbedPath, Field]:
    cur = Cursor(key, "filter")
    names = [cur.field_name()]
    while cur.take("."):
        names.append(cur.field_name())
    field = Field(names[-1], cur.json_path())
    if not cur.at_end():
        raise cur.error("expecting field name")
    return tuple(names[:-1]), field


def _operation(cur: Cursor, field: Field, *, in_logic: bool) -> Filter:
    negate = cur.take("not.")
    start = cur.pos
    while not cur.at_end() and cur.peek().isalpha():
        cur.pos += 1
    op = cur.text[start : cur.pos]
    if op not in OPERATORS:
        cur.pos = start
        raise cur.error('expecting "not" or operator (eq, gt, ...)')
    modifier = None
    if cur.peek() == "(" and (op in QUANTIFIABLE or op in FTS_OPS):
        cur.pos += 1
        mstart = cur.pos
        while not cur.at_end() and cur.peek() != ")":
            cur.pos += 1
        modifier = cur.text[mstart : cur.pos]
        cur.expect(")")
        if op in QUANTIFIABLE and modifier not in ("any", "all"):
            cur.pos = mstart
            raise cur.error('expecting "any" or "all"')
        if op in FTS_OPS and not modifier:
            raise cur.error("expecting language")
    cur.expect(".")
    if op == "in":
        values = _list(cur)
        if not in_logic and not cur.at_end():
            raise cur.error("expecting end of input")
        return Filter(field, op, values, negate)
    raw = _logic_value(cur) if in_logic else cur.text[cur.pos :]
    if not in_logic:
        cur.pos = len(cur.text)
    if op == "is":
        if raw.lower() not in IS_VALUES:
            raise parse_error(
                "filter", cur.text, "expecting null, not_null, true, false or unknown", 1
            )
        raw = raw.lower()
    return Filter(field, op, raw, negate, modifier)


def _list(cur: Cursor) -> tuple[str, ...]:
    cur.expect("(")
    if cur.take(")"):
        return ()
    items: list[str] = []
    while True:
        if cur.peek() == '"':
            items.append(cur.quoted())
        else:
            start = cur.pos
            while not cur.at_end() and cur.peek() not in ",)":
                cur.pos += 1
            items.append(cur.text[start : cur.pos])
        if cur.take(","):
            continue
        cur.expect(")")
        return tuple(items)


def _logic_value(cur: Cursor) -> str:
    if cur.peek() == '"':
        save = cur.pos
        value = cur.quoted()
        if cur.at_end() or cur.peek() in ",)":
            return value
        cur.pos = save
    if cur.peek() == "{":
        end = cur.text.find("}", cur.pos)
        if end != -1 and "{" not in cur.text[cur.pos + 1 : end]:
            value = cur.text[cur.pos : end + 1]
            cur.pos = end + 1
            return value
    start = cur.pos
    while not cur.at_end() and cur.peek() not in ",)":
        cur.pos += 1
    return cur.text[start : cur.pos]


def parse_logic(key: str, value: str) -> Logic:
    """`or=(…)`, `and=(…)`, `not.or=(…)`, `not.and=(…)` with nesting."""
    op, negate = LOGIC_KEYS[key]
    cur = Cursor(value, "logic tree")
    tree = _logic_body(cur, op, negate, 0)  # type: ignore[arg-type]
    if not cur.at_end():
        raise cur.error("expecting end of input")
    return tree


def _logic_body(cur: Cursor, op: Literal["and", "or"], negate: bool, depth: int) -> Logic:
    if depth > MAX_DEPTH:
        raise cur.too_deep()
    cur.expect("(")
    children: list[Condition] = []
    while True:
        children.append(_logic_condition(cur, depth))
        if cur.take(","):
            continue
        cur.expect(")")
        return Logic(op, tuple(children), negate)


def _logic_condition(cur: Cursor, depth: int) -> Condition:
    for prefix, (op, negate) in (
        ("not.or(", ("or", True)),
        ("not.and(", ("and", True)),
        ("or(", ("or", False)),
        ("and(", ("and", False)),
    ):
        if cur.text.startswith(prefix, cur.pos):
            cur.pos += len(prefix) - 1
            return _logic_body(cur, op, negate, depth + 1)  # type: ignore[arg-type]
    field = cur.field()
    cur.expect(".")
    return _operation(cur, field, in_logic=True)


# --- order, columns, ranges ---
def parse_order(text: str) -> tuple[OrderTerm, ...]:
    cur = Cursor(text, "order")
    terms: list[OrderTerm] = []
    while True:
        field = cur.field()
        relation = None
        if cur.take("("):
            relation, field = field.name, cur.field()
            cur.expect(")")
        desc, nulls = False, None
        if cur.take(".asc"):
            desc = False
        elif cur.take(".desc"):
            desc = True
        if cur.take(".nullsfirst"):
            nulls = "first"
        elif cur.take(".nullslast"):
            nulls = "last"
        terms.append(OrderTerm(field, desc, nulls, relation))  # type: ignore[arg-type]
        if cur.take(","):
            continue
        if not cur.at_end():
            raise cur.error('expecting ".asc", ".desc", ".nullsfirst", ".nullslast" or ","')
        return tuple(terms)


def parse_names(text: str, what: str) -> tuple[str, ...]:
    """`columns=` and `on_conflict=`: comma-separated names, quoted or bare."""
    cur = Cursor(text, what)
    names: list[str] = []
    while True:
        while cur.peek() == " ":
            cur.pos += 1
        names.append(cur.field_name())
        while cur.peek() == " ":
            cur.pos += 1
        if cur.take(","):
            continue
        if not cur.at_end():
            raise cur.error('expecting "," or end of input')
        return tuple(names)


def parse_count(text: str, what: str) -> int:
    if not _INTEGER.fullmatch(text.strip()):
        if what == "limit" and text.strip().startswith("-") and text.strip()[1:].isdigit():
            raise invalid_range("Limit should be greater than or equal to zero.")
        raise parse_error(f"{what} parameter", text, "expecting a non-negative integer")
    return int(text.strip())


def parse_range_header(text: str | None) -> tuple[int, int | None] | None:
    """`Range: 0-9` (or open-ended `10-`) → (offset, limit); a malformed header is ignored."""
    if not text:
        return None
    m = _RANGE.match(text)
    if not m:
        return None
    lower = int(m.group(1))
    if not m.group(2):
        return lower, None
    upper = int(m.group(2))
    if lower > upper:
        raise invalid_range(
            "The lower boundary must be lower than or equal to the upper boundary "
            "in the Range header."
        )
    return lower, upper - lower + 1


# --- the whole query string ---
_EMBEDDABLE = ("order", "limit", "offset", "or", "and")


def _scoped_key(key: str) -> tuple[EmbedPath, str] | None:
    """`a.b.order` → ((a, b), "order"); `a.not.or` → ((a,), "not.or"); None for other keys."""
    if '"' in key or "->" in key:
        return None
    parts = key.split(".")
    last = parts[-1]
    if last not in _EMBEDDABLE:
        return None
    rest = parts[:-1]
    if last in ("or", "and") and rest and rest[-1] == "not":
        rest, last = rest[:-1], f"not.{last}"
    if not all(rest):
        return None
    return tuple(rest), last


def parse_query(pairs: list[tuple[str, str]]) -> ApiQuery:
    """Reserved keys, logic trees and column filters of one request (all ANDed together);
    keys prefixed with an embed path (`messages.order`) go to that embedded resource."""
    select: tuple[SelectItem, ...] = (SelectStar(),)
    scoped: dict[EmbedPath, dict[str, Any]] = {}
    columns = on_conflict = None

    def at(path: EmbedPath) -> dict[str, Any]:
        return scoped.setdefault(path, {"where": [], "order": (), "limit": None, "offset": None})

    for key, value in pairs:
        if key == "select":
            select = parse_select(value)
            continue
        if key == "columns":
            columns = parse_names(value, "columns")
            continue
        if key == "on_conflict":
            on_conflict = parse_names(value, "on_conflict")
            continue
        found = _scoped_key(key)
        if found is None:
            path, flt = parse_scoped_filter(key, value)
            at(path)["where"].append(flt)
            continue
        path, word = found
        node = at(path)
        if word == "order":
            node["order"] = parse_order(value)
        elif word in ("limit", "offset"):
            node[word] = parse_count(value, word)
        else:
            node["where"].append(parse_logic(word, value))
    root = at(())
    embedded = tuple(
        (path, EmbedParams(tuple(p["where"]), p["order"], p["limit"], p["offset"]))
        for path, p in scoped.items()
        if path
    )
    return ApiQuery(
        select,
        tuple(root["where"]),
        root["order"],
        root["limit"],
        root["offset"],
        columns,
        on_conflict,
        embedded,
    )


def looks_like_filter(value: str) -> bool:
    """Whether a GET /rpc query value is `op.value` (a filter) rather than an argument."""
    head = value.removeprefix("not.")
    op = re.match(r"[a-z]+", head)
    return bool(op and op.group(0) in OPERATORS and head[op.end() : op.end() + 1] in (".", "("))
