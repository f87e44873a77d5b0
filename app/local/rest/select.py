"""The `select` parameter's grammar: fields, casts, aggregates, and embedded resources
(`alias:name!hint!inner(…)`, `...spread(…)`, `count()`), nested at most `MAX_DEPTH` deep."""

from __future__ import annotations

from typing import Literal

from app.local.rest.cursor import MAX_DEPTH, Cursor
from app.local.rest.syntax import (
    AGGREGATES,
    Field,
    SelectEmbed,
    SelectField,
    SelectItem,
    SelectStar,
)


def parse_select(text: str) -> tuple[SelectItem, ...]:
    if not text.strip():
        return (SelectStar(),)
    cur = Cursor(text, "select")
    items = _select_list(cur, depth=0)
    if not cur.at_end():
        raise cur.error('expecting "," or end of input')
    return tuple(items)


def _select_list(cur: Cursor, *, depth: int) -> list[SelectItem]:
    if depth > MAX_DEPTH:
        raise cur.too_deep()
    items: list[SelectItem] = []
    while True:
        items.append(_select_item(cur, depth))
        if not cur.take(","):
            break
    if depth and not cur.take(")"):
        raise cur.error('expecting ")"')
    return items


def _select_item(cur: Cursor, depth: int) -> SelectItem:
    cur.skip_spaces()
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
        cur.skip_spaces()
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
    cur.skip_spaces()
    return SelectField(field, alias, cast, aggregate, agg_cast)


def _cast(cur: Cursor) -> str | None:
    if not cur.take("::"):
        return None
    start = cur.pos
    while not cur.at_end() and (cur.peek().isalnum() or cur.peek() in "_ "):
        cur.pos += 1
    cast = cur.text[start : cur.pos].strip()
    if not cast:
        raise cur.error("expecting cast type")
    return cast


def _embed_params(cur: Cursor) -> tuple[str | None, Literal["inner", "left"] | None]:
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


def _embed_items(cur: Cursor, depth: int) -> tuple[SelectItem, ...]:
    cur.expect("(")
    if cur.take(")"):
        return ()
    return tuple(_select_list(cur, depth=depth + 1))
