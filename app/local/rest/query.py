"""PostgREST's query-string grammar (wire reference §2.2) as a pure parser producing a small AST.

No SQL and no catalogue here: names stay names, values stay text. `rest_sql` checks names
against the catalogue and binds values. Anything the grammar does not accept is a PGRST100
`RestError`, worded like PostgREST's parser errors.
"""

from __future__ import annotations

import re
from typing import Literal

from app.local.rest.errors import RestError, invalid_range, not_embedded, parse_error
from app.local.rest.syntax import (
    ApiQuery,
    Condition,
    Field,
    Filter,
    JsonStep,
    Logic,
    OrderTerm,
    SelectEmbed,
    SelectField,
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
_IDENT_CHARS = re.compile(r"[\w $]", re.UNICODE)
_INTEGER = re.compile(r"\d+")
_RANGE = re.compile(r"^\s*(?:items=)?(\d+)-(\d*)\s*$")


class _Cursor:
    """A position in one parameter's text; errors name the parameter like PostgREST does."""

    def __init__(self, text: str, what: str) -> None:
        self.text, self.what, self.pos = text, what, 0

    def peek(self, n: int = 1) -> str:
        return self.text[self.pos : self.pos + n]

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def take(self, s: str) -> bool:
        if self.text.startswith(s, self.pos):
            self.pos += len(s)
            return True
        return False

    def expect(self, s: str) -> None:
        if not self.take(s):
            raise self.error(f'expecting "{s}"')

    def error(self, expecting: str) -> RestError:
        found = f'unexpected "{self.peek()}"' if not self.at_end() else "unexpected end of input"
        return parse_error(self.what, self.text, f"{found} {expecting}", self.pos + 1)

    def quoted(self) -> str:
        """A double-quoted string; backslash escapes the next character."""
        self.expect('"')
        out: list[str] = []
        while not self.at_end():
            ch = self.text[self.pos]
            self.pos += 1
            if ch == '"':
                return "".join(out)
            if ch == "\\" and not self.at_end():
                ch = self.text[self.pos]
                self.pos += 1
            out.append(ch)
        raise self.error('expecting closing quote "')

    def identifier(self) -> str:
        """Letters, digits, `_`, `$` and spaces (stripped), joined by single dashes."""
        parts: list[str] = []
        while True:
            start = self.pos
            while not self.at_end() and _IDENT_CHARS.fullmatch(self.text[self.pos]):
                self.pos += 1
            part = self.text[start : self.pos].strip()
            if not part:
                raise self.error("expecting field name (* or [a..z0..9_$])")
            parts.append(part)
            if self.peek() == "-" and self.peek(2) != "->":
                self.pos += 1
                continue
            return "-".join(parts)

    def field_name(self) -> str:
        return self.quoted() if self.peek() == '"' else self.identifier()

    def field(self) -> Field:
        return Field(self.field_name(), self.json_path())

    def json_path(self) -> tuple[JsonStep, ...]:
        """`->key` / `->>key` steps; a key may be quoted or a (negative) array index."""
        steps: list[JsonStep] = []
        while self.peek(2) == "->":
            arrow: Literal["->", "->>"] = "->>" if self.take("->>") else "->"
            if arrow == "->":
                self.pos += 2
            negative = self.take("-")
            key = self.field_name()
            steps.append(JsonStep(arrow, f"-{key}" if negative else key))
        return tuple(steps)


# --- select ---
def parse_select(text: str) -> tuple[SelectItem, ...]:
    if not text.strip():
        return (SelectStar(),)
    cur = _Cursor(text, "select")
    items = _select_list(cur, top=True)
    if not cur.at_end():
        raise cur.error('expecting "," or end of input')
    return tuple(items)


def _select_list(cur: _Cursor, *, top: bool) -> list[SelectItem]:
    items: list[SelectItem] = []
    while True:
        items.append(_select_item(cur))
        if not cur.take(","):
            break
    if not top and not cur.take(")"):
        raise cur.error('expecting ")"')
    return items


def _select_item(cur: _Cursor) -> SelectItem:
    while cur.peek() == " ":
        cur.pos += 1
    if cur.take("*"):
        return SelectStar()
    if cur.take("..."):
        name = cur.field_name()
        _skip_embed(cur)
        return SelectEmbed(name)
    name = cur.field_name()
    alias = None
    if cur.peek() == ":" and cur.peek(2) != "::":
        cur.pos += 1
        alias, name = name, cur.field_name()
    if cur.peek() in ("(", "!"):
        _skip_embed(cur)
        return SelectEmbed(name, alias)
    field = Field(name, cur.json_path())
    cast = None
    if cur.take("::"):
        start = cur.pos
        while not cur.at_end() and (cur.peek().isalnum() or cur.peek() in "_ "):
            cur.pos += 1
        cast = cur.text[start : cur.pos].strip()
        if not cast:
            raise cur.error("expecting cast type")
    return SelectField(field, alias, cast)


def _skip_embed(cur: _Cursor) -> None:
    """Consume `!hint…(…)` of an embedded resource; its contents must still parse."""
    while cur.take("!"):
        cur.field_name()
    cur.expect("(")
    if cur.take(")"):
        return
    _select_list(cur, top=False)


# --- filters ---
def parse_filter(key: str, value: str) -> Filter:
    """`key=op.value` at the top level of the query string."""
    field = _filter_key(key)
    cur = _Cursor(value, "filter")
    return _operation(cur, field, in_logic=False)


def _filter_key(key: str) -> Field:
    cur = _Cursor(key, "filter")
    field = cur.field()
    if cur.peek() == ".":
        raise not_embedded(field.name)
    if not cur.at_end():
        raise cur.error("expecting field name")
    return field


def _operation(cur: _Cursor, field: Field, *, in_logic: bool) -> Filter:
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


def _list(cur: _Cursor) -> tuple[str, ...]:
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


def _logic_value(cur: _Cursor) -> str:
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
    cur = _Cursor(value, "logic tree")
    tree = _logic_body(cur, op, negate)  # type: ignore[arg-type]
    if not cur.at_end():
        raise cur.error("expecting end of input")
    return tree


def _logic_body(cur: _Cursor, op: Literal["and", "or"], negate: bool) -> Logic:
    cur.expect("(")
    children: list[Condition] = []
    while True:
        children.append(_logic_condition(cur))
        if cur.take(","):
            continue
        cur.expect(")")
        return Logic(op, tuple(children), negate)


def _logic_condition(cur: _Cursor) -> Condition:
    for prefix, (op, negate) in (
        ("not.or(", ("or", True)),
        ("not.and(", ("and", True)),
        ("or(", ("or", False)),
        ("and(", ("and", False)),
    ):
        if cur.text.startswith(prefix, cur.pos):
            cur.pos += len(prefix) - 1
            return _logic_body(cur, op, negate)  # type: ignore[arg-type]
    field = cur.field()
    cur.expect(".")
    return _operation(cur, field, in_logic=True)


# --- order, columns, ranges ---
def parse_order(text: str) -> tuple[OrderTerm, ...]:
    cur = _Cursor(text, "order")
    terms: list[OrderTerm] = []
    while True:
        field = cur.field()
        if cur.peek() == "(":
            raise not_embedded(field.name)
        desc, nulls = False, None
        if cur.take(".asc"):
            desc = False
        elif cur.take(".desc"):
            desc = True
        if cur.take(".nullsfirst"):
            nulls = "first"
        elif cur.take(".nullslast"):
            nulls = "last"
        terms.append(OrderTerm(field, desc, nulls))  # type: ignore[arg-type]
        if cur.take(","):
            continue
        if not cur.at_end():
            raise cur.error('expecting ".asc", ".desc", ".nullsfirst", ".nullslast" or ","')
        return tuple(terms)


def parse_names(text: str, what: str) -> tuple[str, ...]:
    """`columns=` and `on_conflict=`: comma-separated names, quoted or bare."""
    cur = _Cursor(text, what)
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
def parse_query(pairs: list[tuple[str, str]]) -> ApiQuery:
    """Reserved keys, logic trees and column filters of one request (all ANDed together)."""
    select: tuple[SelectItem, ...] = (SelectStar(),)
    where: list[Condition] = []
    order: tuple[OrderTerm, ...] = ()
    limit = offset = None
    columns = on_conflict = None
    for key, value in pairs:
        if key == "select":
            select = parse_select(value)
        elif key == "order":
            order = parse_order(value)
        elif key == "limit":
            limit = parse_count(value, "limit")
        elif key == "offset":
            offset = parse_count(value, "offset")
        elif key == "columns":
            columns = parse_names(value, "columns")
        elif key == "on_conflict":
            on_conflict = parse_names(value, "on_conflict")
        elif key in LOGIC_KEYS:
            where.append(parse_logic(key, value))
        elif key.endswith((".or", ".and", ".order", ".limit", ".offset")) and '"' not in key:
            raise not_embedded(key.rsplit(".", 1)[0].removesuffix(".not"))
        else:
            where.append(parse_filter(key, value))
    return ApiQuery(select, tuple(where), order, limit, offset, columns, on_conflict)


def looks_like_filter(value: str) -> bool:
    """Whether a GET /rpc query value is `op.value` (a filter) rather than an argument."""
    head = value.removeprefix("not.")
    op = re.match(r"[a-z]+", head)
    return bool(op and op.group(0) in OPERATORS and head[op.end() : op.end() + 1] in (".", "("))
