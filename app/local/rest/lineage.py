"""Which base-table column each column of a view comes from, read from the view's rewrite rule.

PostgreSQL stores a view's query as a `pg_node_tree` (`pg_rewrite.ev_action`); every entry of
the top query's target list carries `resorigtbl`/`resorigcol`, the table and column a plain
column reference resolves to. PostgREST uses exactly these to give views the foreign keys of
their base tables. This module parses that text format (iteratively: view trees can be deep)
and returns the top-level target list; `relations` follows views over views.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_SINGLE = frozenset("(){}")


@dataclass(frozen=True)
class TargetColumn:
    name: str
    origin_table: int  # pg_class oid, 0 when the column is an expression
    origin_column: int  # attnum


def _tokens(text: str) -> list[str]:
    """Split like PostgreSQL's `pg_strtok`: whitespace separates, `(){}` stand alone, a
    backslash makes the next character literal."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if ch in _SINGLE:
            out.append(ch)
            i += 1
            continue
        buf: list[str] = []
        while i < n and not text[i].isspace() and text[i] not in _SINGLE:
            if text[i] == "\\" and i + 1 < n:
                i += 1
            buf.append(text[i])
            i += 1
        out.append("".join(buf))
    return out


def parse_node_tree(text: str) -> Any:
    """Nodes become dicts (`_type` plus fields), lists become lists, `<>` becomes None."""
    root: list[Any] = []
    # Each frame: (container, current field name or None)
    stack: list[tuple[Any, str | None]] = [(root, None)]
    tokens = _tokens(text)
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        i += 1
        container, key = stack[-1]
        if tok == "{":
            node: dict[str, Any] = {"_type": tokens[i] if i < len(tokens) else ""}
            i += 1
            _add(container, key, node)
            stack.append((node, None))
        elif tok == "(":
            lst: list[Any] = []
            _add(container, key, lst)
            stack.append((lst, None))
        elif tok in ("}", ")"):
            if len(stack) > 1:
                stack.pop()
        elif isinstance(container, dict) and tok.startswith(":") and len(tok) > 1:
            stack[-1] = (container, tok[1:])
            container.setdefault(tok[1:], [])
        else:
            _add(container, key, None if tok == "<>" else tok)
    return root


def _add(container: Any, key: str | None, value: Any) -> None:
    if isinstance(container, list):
        container.append(value)
    elif key is not None:
        container[key].append(value)


def _one(node: dict[str, Any], key: str) -> Any:
    values = node.get(key) or [None]
    return values[0]


def target_columns(ev_action: str) -> list[TargetColumn]:
    """The view's output columns with their origin; empty when the text is not understood."""
    try:
        tree = parse_node_tree(ev_action)
        query = tree[0][0] if isinstance(tree[0], list) else tree[0]
        entries = _one(query, "targetList") or []
        out: list[TargetColumn] = []
        for entry in entries:
            if not isinstance(entry, dict) or _one(entry, "resjunk") == "true":
                continue
            out.append(
                TargetColumn(
                    str(_one(entry, "resname") or ""),
                    int(_one(entry, "resorigtbl") or 0),
                    int(_one(entry, "resorigcol") or 0),
                )
            )
        return out
    except (IndexError, KeyError, TypeError, ValueError, AttributeError):
        return []
