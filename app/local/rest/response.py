"""Turning a transaction's outcome into PostgREST's response (status, body, `Content-Range`).

Statuses (200/206/201/204, 416 past the total), `Content-Range`, the JSON or single-object
media type, `Location` for `return=headers-only`, and the max-rows cap on the page size.
"""

from __future__ import annotations

from urllib.parse import quote

import orjson
from starlette.responses import Response

from app.local.rest import errors
from app.local.rest.headers import (
    CSV_MEDIA,
    GEOJSON_MEDIA,
    OBJECT_MEDIA,
    PLAN_MEDIA,
    Accept,
    Preferences,
)
from app.local.rest.schema import MAX_ROWS
from app.local.rest.tx import Outcome


def page_bounds(
    q_offset: int | None,
    q_limit: int | None,
    rng: tuple[int, int | None] | None,
    max_rows: int = MAX_ROWS,
) -> tuple[int, int]:
    """(offset, limit): `offset`/`limit` intersected with the Range header, capped at max-rows."""
    lower, length = rng if rng else (0, None)
    start = max(q_offset or 0, lower)
    ends = [
        end
        for end in (
            (q_offset or 0) + q_limit if q_limit is not None else None,
            lower + length if length is not None else None,
        )
        if end is not None
    ]
    limit = max(0, min(ends) - start) if ends else max_rows
    return start, min(limit, max_rows)


def content_range(lower: int, rows: int, total: int | None) -> str:
    total_text = "*" if total is None else str(total)
    if rows <= 0 or total == 0:
        return f"*/{total_text}"
    return f"{lower}-{lower + rows - 1}/{total_text}"


def _media(accept: Accept) -> str:
    if accept.csv:
        return f"{CSV_MEDIA}; charset=utf-8"
    if accept.geojson:
        return f"{GEOJSON_MEDIA}; charset=utf-8"
    return f"{OBJECT_MEDIA}; charset=utf-8" if accept.singular else errors.JSON_TYPE


def read_response(
    outcome: Outcome, lower: int, accept: Accept, head: bool, extra: dict[str, str]
) -> Response:
    total = outcome.total
    status = 200
    if total is not None:
        if lower > total:
            raise errors.invalid_range(
                f"An offset of {lower} was requested, but there are only {total} rows."
            )
        if outcome.page_total < total:
            status = 206
    headers = {"Content-Range": content_range(lower, outcome.page_total, total)} | extra
    body = b"" if head else _body_bytes(outcome.body, accept)
    return Response(body, status_code=status, headers=headers, media_type=_media(accept))


def plan_response(outcome: Outcome, accept: Accept, extra: dict[str, str]) -> Response:
    """The plan media type: `EXPLAIN` output, labelled with the media type it plans for."""
    media = f'{PLAN_MEDIA}+{accept.plan}; for="{accept.plan_for}"; charset=utf-8'
    body = (outcome.body or "").encode()
    return Response(body, status_code=200, headers=dict(extra), media_type=media)


def scalar_response(
    outcome: Outcome, head: bool, extra: dict[str, str], *, counted: bool = False
) -> Response:
    """A function that returns one value or one composite: the bare JSON value (one row,
    so `count=exact` reads `0-0/1`)."""
    body = b"" if head else (outcome.body or "null").encode()
    headers = {"Content-Range": "0-0/1" if counted else "0-0/*"} | extra
    return Response(body, status_code=200, headers=headers, media_type=errors.JSON_TYPE)


def write_response(
    method: str,
    table: str,
    outcome: Outcome,
    accept: Accept,
    prefs: Preferences,
    extra: dict[str, str],
) -> Response:
    mode = prefs.return_ or "minimal"
    n = outcome.page_total
    counted = n if prefs.count is not None else None
    if method == "PUT":  # PostgREST: 201/200 with the representation, else 204
        status = (201 if outcome.inserted else 200) if mode == "representation" else 204
        headers = dict(extra)
    elif method == "POST":
        headers = {"Content-Range": f"*/{'*' if counted is None else counted}"} | extra
        only_updated = prefs.resolution == "merge-duplicates" and outcome.inserted == 0
        status = 200 if only_updated else 201
    else:
        headers = {"Content-Range": content_range(0, n, counted)} | extra
        status = 200 if mode == "representation" else 204
    if mode == "headers-only" and method == "POST" and outcome.body not in (None, "null"):
        pk = orjson.loads(outcome.body or "{}")
        query = "&".join(f"{quote(str(k))}=eq.{quote(str(v))}" for k, v in pk.items())
        headers["Location"] = f"/{quote(table)}?{query}"
    if mode != "representation":
        return Response(status_code=status, headers=headers)
    return Response(
        _body_bytes(outcome.body, accept),
        status_code=status,
        headers=headers,
        media_type=_media(accept),
    )


def _body_bytes(body: str | None, accept: Accept) -> bytes:
    if accept.csv:
        return (body or "").encode()
    text = body if body is not None else "[]"
    if accept.strip_nulls:
        return orjson.dumps(_strip_nulls(orjson.loads(text)))
    return text.encode()


def _strip_nulls(value: object) -> object:
    if isinstance(value, dict):
        return {k: _strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_strip_nulls(v) for v in value]
    return value


def with_gucs(response: Response, outcome: Outcome) -> Response:
    """`response.status` / `response.headers` set by the request's SQL override PostgREST's
    own (PGRST112 / PGRST111 when they are malformed)."""
    if outcome.response_status is not None:
        text = outcome.response_status.strip()
        if not text.isdigit() or not 100 <= int(text) <= 599:
            raise errors.RestError(
                500, "PGRST112", "response.status guc must be a valid status code"
            )
        response.status_code = int(text)
    if outcome.response_headers is not None:
        for name, value in _guc_headers(outcome.response_headers):
            response.headers[name] = value
    return response


def _guc_headers(text: str) -> list[tuple[str, str]]:
    bad = errors.RestError(
        500,
        "PGRST111",
        "response.headers guc must be a JSON array composed of objects with a single key and a "
        "string value",
    )
    try:
        items = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise bad from exc
    if not isinstance(items, list):
        raise bad
    out: list[tuple[str, str]] = []
    for item in items:
        if not isinstance(item, dict) or len(item) != 1:
            raise bad
        ((name, value),) = item.items()
        if not isinstance(value, str) or not name or "\n" in name + value or "\r" in name + value:
            raise bad
        out.append((name, value))
    return out
