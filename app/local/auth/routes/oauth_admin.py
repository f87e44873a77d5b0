"""OAuth 2.1 client registration: the admin API (`/admin/oauth/clients…`) and dynamic
registration (`POST /oauth/clients/register`), as GoTrue v2.189 serves them with
`[auth.oauth_server] enabled`.

Admin credentials come first (GoTrue's `/admin` router), then the client of the path: a
malformed id is 400, an unknown or deleted one 404 `oauth_client_not_found`. A registration
refusal is 400 `validation_failed` whose message keeps the inner error's `400: ` prefix, as
GoTrue's handler wraps it; an update's refusal is the inner error itself.
"""

from __future__ import annotations

import uuid
from typing import Any

from psycopg import AsyncConnection
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.local.auth import oauth_clients as clients
from app.local.auth import store
from app.local.auth.errors import AuthApiError, bad_request, forbidden, json_response, not_found
from app.local.auth.guard import require_admin
from app.local.auth.issue import config_of, ctx_of
from app.local.auth.params import read_body


def oauth_admin_routes() -> list[Route]:
    return [
        Route("/admin/oauth/clients", clients_collection, methods=["GET", "POST"]),
        Route("/admin/oauth/clients/{client_id}", client_item, methods=["GET", "PUT", "DELETE"]),
        Route(
            "/admin/oauth/clients/{client_id}/regenerate_secret",
            regenerate_secret,
            methods=["POST"],
        ),
        Route("/oauth/clients/register", register_dynamic, methods=["POST"]),
    ]


async def clients_collection(request: Request) -> Response:
    require_admin(request, ctx_of(request).keys)
    if request.method == "POST":
        return await _register(request, registration_type="manual")
    async with store.read(ctx_of(request)) as conn:
        rows = await clients.list_clients(conn)
    return json_response({"clients": [clients.client_json(r) for r in rows]})


async def register_dynamic(request: Request) -> Response:
    """RFC 7591 dynamic registration: open to anyone, when the project allows it."""
    if not config_of(request).oauth_server.allow_dynamic_registration:
        raise forbidden(
            "oauth_dynamic_client_registration_disabled",
            "Dynamic client registration is not enabled",
        )
    return await _register(request, registration_type="dynamic")


async def _register(request: Request, *, registration_type: str) -> Response:
    params = clients.decode_params(await read_body(request), clients.RegisterParams)
    try:
        clients.check_register(params)
    except AuthApiError as exc:
        raise bad_request("validation_failed", f"{exc.status}: {exc.message}") from exc
    async with store.transaction(ctx_of(request)) as conn:
        row, secret = await clients.insert_client(conn, params, registration_type=registration_type)
    return json_response(clients.client_json(row, secret), status=201)


async def client_item(request: Request) -> Response:
    require_admin(request, ctx_of(request).keys)
    client_id = _client_id(request)
    if request.method == "PUT":
        return await _update(request, client_id)
    async with store.transaction(ctx_of(request)) as conn:
        client = await _existing(conn, client_id)
        if request.method == "DELETE":
            await clients.soft_delete_client(conn, client_id)
            return Response(status_code=204)
    return json_response(clients.client_json(client))


async def _update(request: Request, client_id: uuid.UUID) -> Response:
    async with store.read(ctx_of(request)) as conn:
        await _existing(conn, client_id)
    params = clients.decode_params(await read_body(request), clients.UpdateParams)
    if params.is_empty():
        raise bad_request("validation_failed", "No fields provided for update")
    clients.check_update(params)
    async with store.transaction(ctx_of(request)) as conn:
        client = await _existing(conn, client_id)
        changes = clients.update_changes(client, params)
        updated = await clients.update_client(conn, client_id, changes) if changes else client
    if updated is None:
        raise _client_not_found()
    return json_response(clients.client_json(updated))


async def regenerate_secret(request: Request) -> Response:
    require_admin(request, ctx_of(request).keys)
    client_id = _client_id(request)
    async with store.transaction(ctx_of(request)) as conn:
        client = await _existing(conn, client_id)
        if client["client_type"] != clients.CONFIDENTIAL:
            raise bad_request("validation_failed", "Cannot regenerate secret for public client")
        secret, secret_hash = clients.new_secret()
        updated = await clients.update_client(conn, client_id, {"client_secret_hash": secret_hash})
    if updated is None:
        raise _client_not_found()
    return json_response(clients.client_json(updated, secret))


def _client_id(request: Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.path_params["client_id"])
    except ValueError as exc:
        raise bad_request("validation_failed", "invalid client_id format") from exc


async def _existing(conn: AsyncConnection[Any], client_id: uuid.UUID) -> store.Row:
    client = await clients.find_client(conn, client_id)
    if client is None:
        raise _client_not_found()
    return client


def _client_not_found() -> AuthApiError:
    return not_found("oauth_client_not_found", "OAuth client not found")
