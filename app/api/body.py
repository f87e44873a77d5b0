"""The request: its representation checked, its body size-capped and time-bounded before parsing,
then validated into a typed command.

What a hostile or unusual client gets (tests/api/test_hostile_clients.py):
- a body over the cap, declared or growing (chunked): 413 as soon as it is known, unread;
- a body that stops arriving: 408 after `BODY_TIMEOUT_SECONDS`; a client that hangs up while
  sending: nothing (no response can reach it, nothing is stored, nothing is logged as an error);
- JSON is UTF-8 (RFC 8259 §8.1): a leading BOM is skipped, a `charset` parameter is ignored;
  any `Content-Encoding` but identity is 415; duplicate keys: the last wins; unknown fields are
  ignored;
- ids are the canonical 8-4-4-4-12 form, in either case (like a token's `sub`);
- `message` may hold any Unicode text but NUL, which PostgreSQL `text` cannot store;
- more than one `Authorization` header is a 400: which one counts would be a guess.
"""

from __future__ import annotations

import asyncio
import codecs
import re
import unicodedata
import uuid
from typing import Annotated

import orjson
from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError, field_validator
from starlette.requests import ClientDisconnect, Request

from app.api.headers import content_length
from app.errors import (
    BadRequest,
    BodyTimeout,
    ClientClosed,
    TooLarge,
    UnsupportedEncoding,
    UnsupportedMediaType,
)

_UUID_TEXT = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)


class ChatStreamBody(BaseModel):
    """`{"message", "conversationId", "clientMessageId"?}` — the seed's contract."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    message: StrictStr
    conversation_id: Annotated[uuid.UUID, Field(alias="conversationId", strict=False)]
    client_message_id: Annotated[
        uuid.UUID | None, Field(alias="clientMessageId", default=None, strict=False)
    ]

    @field_validator("conversation_id", "client_message_id", mode="before")
    @classmethod
    def _canonical_form(cls, value: object) -> object:
        """Refuse braces, `urn:uuid:` and bare hex, which the UUID type alone would accept."""
        if isinstance(value, str) and not _UUID_TEXT.fullmatch(value):
            raise ValueError("not a UUID in 8-4-4-4-12 form")
        return value


async def read_capped(request: Request, limit: int, *, timeout: float) -> bytes:  # noqa: ASYNC109
    """Refuse an oversized body from its Content-Length, or as soon as it grows past `limit`."""
    declared = request.headers.get("content-length")
    if declared is not None and content_length(declared) > limit:
        raise TooLarge(f"declared {declared} bytes > {limit}")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise TooLarge(f"body over {limit} bytes")
                chunks.append(chunk)
    except TimeoutError as exc:
        raise BodyTimeout(f"{size} bytes in {timeout}s") from exc
    except ClientDisconnect as exc:
        raise ClientClosed(f"client left after {size} body bytes") from exc
    return b"".join(chunks)


def check_content_type(request: Request) -> None:
    """JSON, unencoded, or nothing: a missing Content-Type is read as JSON (as the seed did)."""
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise UnsupportedEncoding(f"content-encoding {encoding!r}")
    content_type = request.headers.get("content-type")
    if content_type is None:
        return
    media = content_type.split(";", 1)[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise UnsupportedMediaType(f"content-type {media!r}")


def authorization_header(request: Request) -> str | None:
    """The one Authorization header; two are refused rather than guessed between."""
    values = request.headers.getlist("authorization")
    if len(values) > 1:
        raise BadRequest("more than one Authorization header")
    return values[0] if values else None


def _visible(message: str) -> bool:
    """Any character but whitespace and invisible format characters (Unicode Cf: zero-width
    space and joiners, word joiner, BOM, bidi marks, soft hyphen): a message of only those shows
    the user nothing, so it is as empty as one JavaScript's trim() leaves empty."""
    return any(not ch.isspace() and unicodedata.category(ch) != "Cf" for ch in message)


def parse_body(raw: bytes, *, max_chars: int) -> ChatStreamBody:
    raw = raw.removeprefix(codecs.BOM_UTF8)
    if not raw.strip():
        raise BadRequest("request body is empty; expected JSON")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest("request body is not valid JSON (UTF-8)") from exc
    if not isinstance(data, dict):
        raise BadRequest("request body must be a JSON object")
    try:
        body = ChatStreamBody.model_validate(data)
    except ValidationError as exc:
        fields = sorted({".".join(str(p) for p in err["loc"]) or "body" for err in exc.errors()})
        raise BadRequest(f"invalid or missing field(s): {', '.join(fields)}") from exc
    if not _visible(body.message):
        raise BadRequest("message must not be empty", code="message_empty")
    if len(body.message) > max_chars:
        raise BadRequest(f"message is longer than {max_chars} characters", code="message_too_long")
    if "\x00" in body.message:
        raise BadRequest("message must not contain NUL (U+0000) characters")
    return body
