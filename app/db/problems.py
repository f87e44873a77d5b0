"""psycopg connection failures as one line an operator can act on (the DSN's password left out)."""

from __future__ import annotations

import re

import psycopg
from psycopg.conninfo import conninfo_to_dict

_FATAL = re.compile(r"FATAL:\s*(.+)")


def connect_problem(exc: psycopg.Error, dsn: str, source: str) -> str:
    """Why `psycopg.connect(dsn)` failed, naming where the DSN came from (`source`)."""
    if isinstance(exc, psycopg.ProgrammingError):
        return f"{source} is not a PostgreSQL connection string ({_first_line(str(exc))})"
    try:
        parts = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        parts = {}
    where = f"{parts.get('host', 'localhost')}:{parts.get('port', 5432)}"
    user = parts.get("user", "?")
    text = str(exc)
    fatal = _FATAL.search(text)
    reason = _first_line(fatal.group(1) if fatal else text.removeprefix("connection failed: "))
    if "password authentication failed" in text:
        return (
            f"the database at {where} refused user {user!r}: password authentication failed "
            f"(check the password in {source})"
        )
    if "Connection refused" in text or "resolve host" in text or "timeout" in text.lower():
        return (
            f"cannot reach the database at {where} ({reason}); check the host and port in {source}"
        )
    return f"cannot connect to the database at {where} as {user!r}: {reason} (check {source})"


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0].strip() if text.strip() else "no detail"
