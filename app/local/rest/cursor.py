"""A position in one query-string parameter, with PostgREST's tokens (names, quoted names,
JSON paths) and its parser errors, which name the parameter like PostgREST's do."""

from __future__ import annotations

import re
from typing import Literal

from app.local.rest.errors import RestError, parse_error
from app.local.rest.syntax import Field, JsonStep

_IDENT_CHARS = re.compile(r"[\w $]", re.UNICODE)
MAX_DEPTH = 64  # nesting of embeds and logic trees; deeper is a PGRST100, never a RecursionError


class Cursor:
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

    def too_deep(self) -> RestError:
        return parse_error(
            self.what,
            self.text,
            f"nesting deeper than {MAX_DEPTH} levels is not allowed",
            self.pos + 1,
        )

    def skip_spaces(self) -> None:
        while self.peek() == " ":
            self.pos += 1
