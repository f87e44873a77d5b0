"""The Data API client for one API key: supabase-py's PostgREST client, the key in `apikey` only.

`supabase.acreate_client` always sends `Authorization: Bearer <key>` when there is no session
(`_get_auth_headers`). Supabase refuses a publishable or secret key there unless it equals
`apikey`, and its gateway turns the `apikey` into a short-lived JWT itself. So the service builds
the PostgREST part (`postgrest.AsyncPostgrestClient`, the class supabase-py uses) directly, with
the headers `app.config.keys.ApiKey.headers()` gives: `apikey` only for an `sb_…` key, plus the
Bearer for a legacy JWT key, as before. Per request `.auth(user_jwt)` copies it with the caller's
own token as the Bearer; the shared client is never changed.
"""

from __future__ import annotations

import httpx
from postgrest import AsyncPostgrestClient
from postgrest.constants import DEFAULT_POSTGREST_CLIENT_HEADERS

from app.config.keys import ApiKey

CLIENT_INFO = "chat-stream"


def data_api_client(
    supabase_url: str, key: ApiKey, http: httpx.AsyncClient
) -> AsyncPostgrestClient:
    """The project's `/rest/v1` for `key`, on the shared pool, carrying no user auth."""
    headers = {**DEFAULT_POSTGREST_CLIENT_HEADERS, "X-Client-Info": CLIENT_INFO, **key.headers()}
    return AsyncPostgrestClient(
        f"{supabase_url.rstrip('/')}/rest/v1", headers=headers, http_client=http
    )
