"""JSON request bodies: parsed once (PGRST102 when empty, invalid or nested too deep), kept with
their original text so PostgreSQL binds it verbatim (no float rounding)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import orjson

from app.local.rest.errors import invalid_body

_TOO_DEEP = "JSON nested deeper than 1024 levels"


@dataclass(frozen=True)
class Body:
    """A parsed JSON request body plus its original text (bound verbatim: no float rounding)."""

    value: Any
    text: str

    @property
    def rows(self) -> list[dict[str, Any]]:
        return self.value if isinstance(self.value, list) else [self.value]


def parse_body(raw: bytes) -> Body:
    """Parse JSON; PGRST102 when empty or invalid. Falls back to `json` for huge integers."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise invalid_body() from exc
    if not text.strip():
        raise invalid_body()
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as err:
        if "depth limit" in str(err).lower() or "recursion" in str(err).lower():
            raise invalid_body(_TOO_DEEP) from err
        try:
            value = json.loads(text)
        except RecursionError as exc:
            raise invalid_body(_TOO_DEEP) from exc
        except ValueError as exc:
            raise invalid_body() from exc
    return Body(value, text)


def put_body(body: Body) -> Body:
    """PUT takes one object (or an array of one)."""
    rows = body.value if isinstance(body.value, list) else [body.value]
    if len(rows) != 1 or not isinstance(rows[0], dict):
        raise invalid_body()
    return body
