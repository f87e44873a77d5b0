"""The Data API clients send an `sb_` key in `apikey` only, never as `Authorization: Bearer`.

A recorder of `/rest/v1/rpc/*` over real HTTP shows the headers each request arrived with. The
store's `DataApi` sends what postgrest-py's `.rpc()` sent, a user's token only on that user's
request, and reads answers and errors as postgrest-py did.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import aiohttp
import httpx
import orjson
import pytest
from postgrest import APIError, AsyncPostgrestClient
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.config.keys import ApiKey
from app.local.postgres import free_port
from app.local.server import ServerThread
from app.store.data_api import DataApi, data_api_client

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

    async def echo(request: Request) -> Response:
        """Answers with the request's headers and body, after a pause (so calls overlap)."""
        await asyncio.sleep(0.05)
        return JSONResponse(
            {"headers": dict(request.headers), "body": orjson.loads(await request.body())}
        )

    async def refuse(request: Request) -> Response:
        kind = request.path_params["kind"]
        if kind == "postgrest":
            error = {
                "code": "PT429",
                "message": "slow down",
                "hint": "over_budget",
                "details": "retry_after=7",
            }
            return JSONResponse(error, status_code=400)
        return Response("<html>bad gateway</html>", status_code=502, media_type="text/html")

    async def empty(_: Request) -> Response:
        return Response(status_code=204)

    app = Starlette(
        routes=[
            Route("/rest/v1/rpc/echo", echo, methods=["POST"]),
            Route("/rest/v1/rpc/empty", empty, methods=["POST"]),
            Route("/rest/v1/rpc/refuse_{kind}", refuse, methods=["POST"]),
            Route("/rest/v1/rpc/{name}", rpc, methods=["POST"]),
        ]
    )
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


async def _rpc(url: str, key: ApiKey, user_token: str | None = None) -> None:
    async with aiohttp.ClientSession() as session:
        await DataApi(url, key, session).rpc("chat_ping", {}, token=user_token)


@pytest.mark.parametrize(
    ("key", "user_token", "expected"),
    [
        (ApiKey("secret", SecretStr(SECRET), "SUPABASE_SECRET_KEY"), None, (SECRET, None)),
        (
            ApiKey("publishable", SecretStr(PUBLISHABLE), "SUPABASE_PUBLISHABLE_KEY"),
            "user.jwt",
            (PUBLISHABLE, "Bearer user.jwt"),
        ),
        (
            ApiKey("secret", SecretStr(LEGACY), "SUPABASE_SERVICE_ROLE_KEY"),
            None,
            (LEGACY, f"Bearer {LEGACY}"),
        ),
        (
            ApiKey("publishable", SecretStr(LEGACY), "SUPABASE_ANON_KEY"),
            "user.jwt",
            (LEGACY, "Bearer user.jwt"),
        ),
    ],
)
async def test_data_api_sends_the_same_key_headers_as_the_postgrest_client(
    recorder: tuple[str, list[dict[str, str | None]]],
    key: ApiKey,
    user_token: str | None,
    expected: tuple[str, str | None],
) -> None:
    url, seen = recorder
    seen.clear()

    await _rpc(url, key, user_token)
    await _ping(url, key, user_token)

    apikey, authorization = expected
    assert seen == [{"apikey": apikey, "authorization": authorization}] * 2


async def test_data_api_two_users_at_once_each_send_only_their_own_token(
    recorder: tuple[str, list[dict[str, str | None]]],
) -> None:
    url, _ = recorder
    key = ApiKey("publishable", SecretStr(PUBLISHABLE), "SUPABASE_PUBLISHABLE_KEY")
    async with aiohttp.ClientSession() as session:
        api = DataApi(url, key, session)
        alice, bob, keyed = await asyncio.gather(
            api.rpc("echo", {"who": "alice"}, token="alice.jwt"),
            api.rpc("echo", {"who": "bob"}, token="bob.jwt"),
            api.rpc("echo", {"who": "nobody"}),
        )

    assert (alice["body"], alice["headers"]["authorization"]) == (
        {"who": "alice"},
        "Bearer alice.jwt",
    )
    assert (bob["body"], bob["headers"]["authorization"]) == ({"who": "bob"}, "Bearer bob.jwt")
    assert "authorization" not in keyed["headers"]  # no token left behind on the shared object
    for answer in (alice, bob, keyed):
        headers = answer["headers"]
        assert headers["content-profile"] == headers["accept-profile"] == "public"
        assert headers["content-type"] == "application/json"
        assert headers["x-client-info"] == "chat-stream"


@pytest.mark.parametrize("fn", ["refuse_postgrest", "refuse_gateway", "empty", "chat_ping"])
async def test_data_api_reads_answers_and_errors_as_postgrest_py(
    recorder: tuple[str, list[dict[str, str | None]]], fn: str
) -> None:
    url, _ = recorder
    key = ApiKey("secret", SecretStr(SECRET), "SUPABASE_SECRET_KEY")

    async def both() -> list[object]:
        out: list[object] = []
        async with aiohttp.ClientSession() as session, httpx.AsyncClient() as http:
            for call in (
                DataApi(url, key, session).rpc(fn, {}),
                _postgrest_rpc(data_api_client(url, key, http), fn),
            ):
                try:
                    out.append(await call)
                except APIError as exc:
                    out.append(("APIError", exc.json()))
        return out

    ours, theirs = await both()

    assert ours == theirs
    if fn.startswith("refuse"):
        assert isinstance(ours, tuple) and ours[0] == "APIError"


async def _postgrest_rpc(client: AsyncPostgrestClient, fn: str) -> object:
    return (await client.schema("public").rpc(fn, {}).execute()).data


async def test_data_api_sends_a_body_over_a_megabyte_whole_without_a_warning(
    recorder: tuple[str, list[dict[str, str | None]]],
) -> None:
    """A long answer's `chat_finish`: aiohttp warns about (and the tests fail on) big raw bytes."""
    url, _ = recorder
    key = ApiKey("secret", SecretStr(SECRET), "SUPABASE_SECRET_KEY")
    answer = "x" * (3 * 2**20 // 2)
    async with aiohttp.ClientSession() as session:
        echoed = await DataApi(url, key, session).rpc("echo", {"p_record": answer})

    assert echoed["body"] == {"p_record": answer}
    assert echoed["headers"]["content-length"] == str(len(answer) + len('{"p_record":""}'))
