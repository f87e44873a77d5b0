"""The request body: size-capped before parsing, then validated into a typed command."""

from __future__ import annotations

import uuid
from typing import Annotated

import orjson
from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError
from starlette.requests import Request

from app.errors import BadRequest, TooLarge, UnsupportedMediaType


class ChatStreamBody(BaseModel):
    """`{"message", "conversationId", "clientMessageId"?}` — the seed's contract."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    message: StrictStr
    conversation_id: Annotated[uuid.UUID, Field(alias="conversationId", strict=False)]
    client_message_id: Annotated[
        uuid.UUID | None, Field(alias="clientMessageId", default=None, strict=False)
    ]


async def read_capped(request: Request, limit: int) -> bytes:
    """Refuse an oversized body from its Content-Length, or as soon as it grows past `limit`."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise TooLarge(f"declared {declared} bytes > {limit}")
        except ValueError as exc:
            raise BadRequest("invalid Content-Length header") from exc
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def check_content_type(request: Request) -> None:
    """JSON or nothing: a missing Content-Type is read as JSON (as the seed did)."""
    content_type = request.headers.get("content-type")
    if content_type is None:
        return
    media = content_type.split(";", 1)[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise UnsupportedMediaType(f"content-type {media!r}")


def parse_body(raw: bytes, *, max_chars: int) -> ChatStreamBody:
    if not raw.strip():
        raise BadRequest("request body is empty; expected JSON")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest("request body is not valid JSON") from exc
    if not isinstance(data, dict):
        raise BadRequest("request body must be a JSON object")
    try:
        body = ChatStreamBody.model_validate(data)
    except ValidationError as exc:
        fields = sorted({".".join(str(p) for p in err["loc"]) or "body" for err in exc.errors()})
        raise BadRequest(f"invalid or missing field(s): {', '.join(fields)}") from exc
    if not body.message.strip():
        raise BadRequest("message must not be empty")
    if len(body.message) > max_chars:
        raise BadRequest(f"message is longer than {max_chars} characters")
    return body
