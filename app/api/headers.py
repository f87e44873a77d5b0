"""Strict parsers for what a client sends outside the JSON body: ids and numbers in headers and
paths. ASCII digits only (`str.isdigit()` is true for `²` and Arabic-Indic digits, which `int()`
then refuses or reads), bounded length, range-checked before anything reaches the database.
Anything else is a `BadRequest` (400) whose detail says what was expected.
"""

from __future__ import annotations

import re
import uuid

from app.errors import BadRequest

MAX_SEQ = 10**9 - 1  # an event's seq: far above any answer's token count, far below int4
MAX_CONTENT_LENGTH_DIGITS = 40  # past any cap (read as "too large"), cheap to read
_DIGITS = re.compile(r"[0-9]{1,18}")
_CONTENT_LENGTH = re.compile(rf"[0-9]{{1,{MAX_CONTENT_LENGTH_DIGITS}}}")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def ascii_digits(value: str, *, name: str, maximum: int) -> int:
    """A whole number written in ASCII digits only, at most `maximum`."""
    if not _DIGITS.fullmatch(value) or int(value) > maximum:
        raise BadRequest(f"{name} must be a whole number from 0 to {maximum} in ASCII digits")
    return int(value)


def canonical_uuid(value: str) -> str | None:
    """The id in its canonical lower-case 8-4-4-4-12 form, or None when it is not one (braces,
    `urn:uuid:`, bare hex and any other spelling `uuid.UUID` would accept are refused)."""
    if not _UUID.fullmatch(value):
        return None
    return str(uuid.UUID(value))


def last_event_seq(value: str | None, turn_id: str) -> int:
    """The seq of `Last-Event-ID: <turn_id>:<seq>` (none or empty: 0, from the start)."""
    if not value or not value.strip():
        return 0
    owner, sep, seq = value.strip().rpartition(":")
    if not sep or canonical_uuid(owner) != turn_id:
        raise BadRequest("Last-Event-ID must be an event id of this turn (<turn_id>:<seq>)")
    return ascii_digits(seq, name="Last-Event-ID's seq", maximum=MAX_SEQ)


def content_length(value: str) -> int:
    """A Content-Length header: ASCII digits, bounded in length (RFC 9110 §8.6). It is only
    compared with the body cap, never stored: 10**19 bytes is a body too large (413), not an
    unreadable header (400)."""
    value = value.strip()
    if not _CONTENT_LENGTH.fullmatch(value):
        raise BadRequest(f"Content-Length must be at most {MAX_CONTENT_LENGTH_DIGITS} ASCII digits")
    return int(value)
