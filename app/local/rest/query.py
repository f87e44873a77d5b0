"""PostgREST's query-string grammar (wire reference §2.2) as a pure parser producing a small AST.

No SQL and no catalogue here: names stay names, values stay text. `rest_sql` checks names
against the catalogue and binds values. Anything the grammar does not accept is a PGRST100
`RestError`, worded like PostgREST's parser errors.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from app.local.rest.errors import RestError, invalid_range, not_embedded, parse_error
from app.local.rest.syntax import (
    AGGREGATES,
    ApiQuery,
    Condition,
    EmbedParams,
    EmbedPath,
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
MAX_DEPTH = 64  # nesting of embeds and logic trees; deeper is a PGRST100, never a RecursionError


def parse_select(text: str) -> tuple[SelectItem, ...]:
    if not text.strip():
        return (SelectStar(),)
    cur = _Cursor(text, "select")
    items = _select_list(cur, depth=0)
    if not cur.at_end():
        raise cur.error('expecting "," or end of input')
    return tuple(items)


def _too_deep(cur: _Cursor) -> RestError:
    return parse_error(
        cur.what, cur.text, f"nesting deeper than {MAX_DEPTH} levels is not allowed", cur.pos + 1
    )


def _select_list(cur: _Cursor, *, depth: int) -> list[SelectItem]:
    if depth > MAX_DEPTH:
        raise _too_deep(cur)
    items: list[SelectItem] = []
    while True:
        items.append(_select_item(cur, depth))
        if not cur.take(","):
            break
    if depth and not cur.take(")"):
        raise cur.error('expecting ")"')
    return items


def _skip_spaces(cur: _Cursor) -> None:
    while cur.peek() == " ":
        cur.pos += 1


def _select_item(cur: _Cursor, depth: int) -> SelectItem:
    _skip_spaces(cur)
    if cur.take("*"):
        return SelectStar()
    if cur.take("..."):
        name = cur.field_name()
        hint, join = _embed_params(cur)
        return SelectEmbed(name, None, hint, join, True, _embed_items(cur, depth))
    name = cur.field_name()
    alias = None
    if cur.peek() == ":" and cur.peek(2) != "::":
        cur.pos += 1
        _skip_spaces(cur)
        alias, name = name, cur.field_name()
    if name == "count" and cur.take("()"):
        return SelectField(Field("*"), alias, None, "count", _cast(cur))
    if cur.peek() in ("(", "!"):
        hint, join = _embed_params(cur)
        return SelectEmbed(name, alias, hint, join, False, _embed_items(cur, depth))
    field = Field(name, cur.json_path())
    cast = _cast(cur)
    aggregate = agg_cast = None
    if cur.peek() == ".":
        save = cur.pos
        cur.pos += 1
        for agg in AGGREGATES:
            if cur.take(agg + "()"):
                aggregate = agg
                break
        if aggregate is None:
            cur.pos = save
        else:
            agg_cast = _cast(cur)
    _skip_spaces(cur)
    return SelectField(field, alias, cast, aggregate, agg_cast)


def _cast(cur: _Cursor) -> str | None:
    if not cur.take("::"):
        return None
    start = cur.pos
    while not cur.at_end() and (cur.peek().isalnum() or cur.peek() in "_ "):
        cur.pos += 1
    cast = cur.text[start : cur.pos].strip()
    if not cast:
        raise cur.error("expecting cast type")
    return cast


def _embed_params(cur: _Cursor) -> tuple[str | None, Literal["inner", "left"] | None]:
    """Up to two `!inner` / `!left` / `!hint` after an embedded resource's name."""
    hint: str | None = None
    join: Literal["inner", "left"] | None = None
    for _ in range(2):
        if not cur.take("!"):
            break
        word = cur.field_name()
        if word == "inner" and join is None:
            join = "inner"
        elif word == "left" and join is None:
            join = "left"
        elif hint is None:
            hint = word
        else:
            raise cur.error('expecting "("')
    if cur.peek() != "(":
        raise cur.error('expecting "("')
    return hint, join


def _embed_items(cur: _Cursor, depth: int) -> tuple[SelectItem, ...]:
    cur.expect("(")
    if cur.take(")"):
        return ()
    return tuple(_select_list(cur, depth=depth + 1))


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
    cur = _Cursor(value, "filter")
    return path, _operation(cur, field, in_logic=False)


def _filter_key(key: str) -> tuple[EmbedPath, Field]:
    cur = _Cursor(key, "filter")
    names = [cur.field_name()]
    while cur.take("."):
        names.append(cur.field_name())
    field = Field(names[-1], cur.json_path())
    if not cur.at_end():
        raise cur.error("expecting field name")
    return tuple(names[:-1]), field


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
    tree = _logic_body(cur, op, negate, 0)  # type: ignore[arg-type]
    if not cur.at_end():
        raise cur.error("expecting end of input")
    return tree


def _logic_body(cur: _Cursor, op: Literal["and", "or"], negate: bool, depth: int) -> Logic:
    if depth > MAX_DEPTH:
        raise _too_deep(cur)
    cur.expect("(")
    children: list[Condition] = []
    while True:
        children.append(_logic_condition(cur, depth))
        if cur.take(","):
            continue
        cur.expect(")")
        return Logic(op, tuple(children), negate)


def _logic_condition(cur: _Cursor, depth: int) -> Condition:
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
    cur = _Cursor(text, "order")
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
