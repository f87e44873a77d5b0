"""The Data API for one API key: `POST /rest/v1/rpc/<fn>` on the shared pool, the key in `apikey`.

`supabase.acreate_client` always sends `Authorization: Bearer <key>` when there is no session
(`_get_auth_headers`). Supabase refuses a publishable or secret key there unless it equals
`apikey`, and its gateway turns the `apikey` into a short-lived JWT itself. So the service never
builds supabase-py's client: `app.config.keys.ApiKey.headers()` gives `apikey` only for an `sb_…`
key, plus the Bearer for a legacy JWT key, as before.

`DataApi` is what the chat store calls: one pooled `httpx` request per RPC, with the same headers,
body and answers as postgrest-py's `.rpc(fn, params).execute()` (its `APIError` for an error
answer), but none of its per-call objects (a client copy per user, a request builder, `Headers`,
a yarl URL, pydantic models): at c=100 they were a tenth of the worker's CPU. The caller's token
goes in that one request's headers; nothing shared ever holds it. `data_api_client` stays for the
alert delivery, which reads tables through postgrest-py's query builder.
"""

from __future__ import annotations

import io
import json
from typing import Any

import aiohttp
import httpx
import orjson
from postgrest import AsyncPostgrestClient
from postgrest.constants import DEFAULT_POSTGREST_CLIENT_HEADERS
from postgrest.exceptions import APIError, APIErrorFromJSON, generate_default_error_message
from pydantic import ValidationError

from app.config.keys import ApiKey
from app.ops import tracing

CLIENT_INFO = "chat-stream"
SCHEMA = "public"
LARGE_BODY_BYTES = 2**20


def data_api_client(
    supabase_url: str, key: ApiKey, http: httpx.AsyncClient
) -> AsyncPostgrestClient:
    """The project's `/rest/v1` for `key`, on the shared pool, carrying no user auth."""
    headers = {**DEFAULT_POSTGREST_CLIENT_HEADERS, "X-Client-Info": CLIENT_INFO, **key.headers()}
    return AsyncPostgrestClient(
        f"{supabase_url.rstrip('/')}/rest/v1", headers=headers, http_client=http
    )


class DataApi:
    """RPCs with one key; `rpc(..., token=jwt)` sends them as that user instead of as the key."""

    __slots__ = ("_headers", "_rpc_url", "_session")

    def __init__(self, supabase_url: str, key: ApiKey, session: aiohttp.ClientSession) -> None:
        self._rpc_url = f"{supabase_url.rstrip('/')}/rest/v1/rpc/"
        self._session = session
        self._headers = {
            **DEFAULT_POSTGREST_CLIENT_HEADERS,
            "Accept-Profile": SCHEMA,
            "Content-Profile": SCHEMA,
            "X-Client-Info": CLIENT_INFO,
            **key.headers(),
        }

    async def rpc(self, fn: str, params: dict[str, Any], *, token: str | None = None) -> Any:
        """The function's JSON answer; `postgrest.APIError` for an error answer, as postgrest-py.

        aiohttp's own errors (`aiohttp.ClientError`) are the caller's to translate."""
        headers = self._headers | tracing.outbound_headers()  # the caller's W3C trace, passed on
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        body = orjson.dumps(params)
        # aiohttp warns (ResourceWarning) about a bytes body over 1 MB; it takes those as a stream.
        data = body if len(body) <= LARGE_BODY_BYTES else io.BytesIO(body)
        async with self._session.post(self._rpc_url + fn, data=data, headers=headers) as response:
            content = await response.read()
            if 200 <= response.status < 300:
                return _json_or_text(content)
            raise _api_error(response, content)


def _json_or_text(content: bytes) -> Any:
    """postgrest-py's reading of a success: JSON, else the text, else an empty list."""
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        pass
    try:  # what orjson refuses but `json` reads (integers past 64 bits, NaN)
        return json.loads(content)
    except ValueError:
        return content.decode("utf-8", "replace") or []


def _api_error(response: aiohttp.ClientResponse, content: bytes) -> APIError:
    """postgrest-py's error for an error answer: its JSON, else the status (and Proxy-Status)."""
    try:
        return APIError(dict(APIErrorFromJSON.model_validate_json(content)))
    except ValidationError:
        pass
    reason = {"reason_phrase": response.reason.encode()} if response.reason else {}
    as_httpx = httpx.Response(
        response.status, headers=list(response.raw_headers), content=content, extensions=reason
    )
    return APIError(generate_default_error_message(as_httpx))
