"""Split a SQL script into statements, remembering the line each one starts on.

The Supabase CLI stores a migration's statements in `schema_migrations.statements` and runs them
one by one; we do the same so a failure can name the line it happened on. Handles quotes,
`"identifiers"`, `--` and nested `/* */` comments, and `$tag$` dollar quoting.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")


@dataclass(frozen=True)
class Statement:
    sql: str
    line: int  # 1-based line where `sql` starts in the script
    code_line: int  # 1-based line of its first character that is not a comment

    def line_at(self, position: int) -> int:
        """Script line of a 1-based character position inside `sql` (PostgreSQL's errpos)."""
        return self.line + self.sql.count("\n", 0, max(position - 1, 0))


def split_statements(script: str) -> list[Statement]:
    out: list[Statement] = []
    i, n = 0, len(script)
    start = 0
    while i < n:
        ch = script[i]
        nxt = script[i + 1] if i + 1 < n else ""
        if ch == "-" and nxt == "-":
            end = script.find("\n", i)
            i = n if end < 0 else end + 1
        elif ch == "/" and nxt == "*":
            i = _skip_block_comment(script, i)
        elif ch in ("'", '"'):
            i = _skip_quoted(script, i, ch)
        elif ch == "$" and (m := _DOLLAR_TAG.match(script, i)) and not _in_identifier(script, i):
            tag = m.group(0)
            end = script.find(tag, m.end())
            i = n if end < 0 else end + len(tag)
        elif ch == ";":
            _append(out, script, start, i)
            i += 1
            start = i
        else:
            i += 1
    _append(out, script, start, n)
    return out


def _in_identifier(script: str, i: int) -> bool:
    """`$1` params and identifiers like `a$b` are not dollar quotes."""
    return i > 0 and (script[i - 1].isalnum() or script[i - 1] == "_")


def _skip_block_comment(script: str, i: int) -> int:
    depth, i = 1, i + 2
    while i < len(script) and depth:
        if script.startswith("/*", i):
            depth, i = depth + 1, i + 2
        elif script.startswith("*/", i):
            depth, i = depth - 1, i + 2
        else:
            i += 1
    return i


def _skip_quoted(script: str, i: int, quote: str) -> int:
    i += 1
    while i < len(script):
        if script[i] == quote:
            if i + 1 < len(script) and script[i + 1] == quote:  # doubled quote is an escape
                i += 2
                continue
            return i + 1
        if script[i] == "\\" and quote == "'" and _is_escape_string(script, i):
            i += 2
            continue
        i += 1
    return i


def _is_escape_string(script: str, i: int) -> bool:
    """Backslash escapes only count inside E'...' strings."""
    j = script.rfind("'", 0, i)
    while j > 0 and script[j - 1] == "'":
        j = script.rfind("'", 0, j - 1)
    return j > 0 and script[j - 1] in "eE" and (j < 2 or not script[j - 2].isalnum())


def _append(out: list[Statement], script: str, start: int, end: int) -> None:
    chunk = script[start:end]
    if not _has_code(chunk):
        return
    lead = len(chunk) - len(chunk.lstrip())
    line = script.count("\n", 0, start + lead) + 1
    code = _first_code_offset(chunk)
    code_line = script.count("\n", 0, start + code) + 1
    out.append(Statement(chunk.strip(), line, code_line))


def _first_code_offset(chunk: str) -> int:
    i = 0
    while i < len(chunk):
        if chunk[i].isspace():
            i += 1
        elif chunk.startswith("--", i):
            end = chunk.find("\n", i)
            i = len(chunk) if end < 0 else end + 1
        elif chunk.startswith("/*", i):
            i = _skip_block_comment(chunk, i)
        else:
            break
    return i


def _has_code(chunk: str) -> bool:
    stripped = re.sub(r"--[^\n]*", "", chunk)
    stripped = re.sub(r"/\*.*?\*/", "", stripped, flags=re.S)
    return bool(stripped.strip())
