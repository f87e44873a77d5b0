"""Bounds on what one request may make the REST stand-in hold or build.

The body is read chunk by chunk and refused with 413 as soon as it passes `MAX_BODY_BYTES`
(or at once, when `Content-Length` already says so), so a 300 MB POST never sits in memory.
Nesting depth is bounded where it drives recursion: the query grammar (`query`) and
JSON bodies (orjson stops at 1024 levels; the fallback parser is kept below Python's limit).
"""

from __future__ import annotations

from starlette.requests import Request

from app.local.rest.errors import RestError

MAX_BODY_BYTES = 8 * 1024 * 1024


def too_large(limit: int) -> RestError:
    return RestError(
        413,
        "PGRST413",
        "Payload Too Large",
        f"The request body is larger than the limit of {limit} bytes.",
        "Send fewer rows per request.",
    )


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The whole body, or 413 without reading past `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)
