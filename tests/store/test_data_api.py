"""The Data API clients send an `sb_` key in `apikey` only, never as `Authorization: Bearer`.

A recorder of `/rest/v1/rpc/*` over real HTTP shows the headers each request arrived with.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.config.keys import ApiKey
from app.local.postgres import free_port
from app.local.server import ServerThread
from app.store.data_api import data_api_client

pytestmark = pytest.mark.anyio

SECRET = "sb_secret_N7UND0UgjKTVK-Uodkm0Hg_xSvEMPvz"
PUBLISHABLE = "sb_publishable_ACJWlzQHlZjBrEguHvfOxg_3BJgxAaH"
LEGACY = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.c2ln"


@pytest.fixture(scope="module")
def recorder() -> Iterator[tuple[str, list[dict[str, str | None]]]]:
    seen: list[dict[str, str | None]] = []

    async def rpc(request: Request) -> Response:
        seen.append(
            {
                "apikey": request.headers.get("apikey"),
                "authorization": request.headers.get("authorization"),
            }
        )
        return JSONResponse(True)

    app = Starlette(routes=[Route("/rest/v1/rpc/{name}", rpc, methods=["POST"])])
    with ServerThread(app, free_port()) as server:
        yield server.url, seen


async def _ping(url: str, key: ApiKey, user_token: str | None = None) -> None:
    async with httpx.AsyncClient() as http:
        client = data_api_client(url, key, http)
        schema = client.schema("public")
        await (schema.auth(user_token) if user_token else schema).rpc("chat_ping", {}).execute()


async def test_data_api_client_sends_the_secret_key_in_apikey_only(
    recorder: tuple[str, list[dict[str, str | None]]],
) -> None:
    url, seen = recorder
    seen.clear()

    await _ping(url, ApiKey("secret", SecretStr(SECRET), "SUPABASE_SECRET_KEY"))

    assert seen == [{"apikey": SECRET, "authorization": None}]


async def test_data_api_client_as_a_user_sends_the_publishable_key_and_the_users_token(
    recorder: tuple[str, list[dict[str, str | None]]],
) -> None:
    url, seen = recorder
    seen.clear()

    await _ping(
        url, ApiKey("publishable", SecretStr(PUBLISHABLE), "SUPABASE_PUBLISHABLE_KEY"), "user.jwt"
    )

    assert seen == [{"apikey": PUBLISHABLE, "authorization": "Bearer user.jwt"}]


async def test_data_api_client_keeps_the_bearer_for_a_legacy_jwt_key(
    recorder: tuple[str, list[dict[str, str | None]]],
) -> None:
    url, seen = recorder
    seen.clear()

    await _ping(url, ApiKey("secret", SecretStr(LEGACY), "SUPABASE_SERVICE_ROLE_KEY"))

    assert seen == [{"apikey": LEGACY, "authorization": f"Bearer {LEGACY}"}]
