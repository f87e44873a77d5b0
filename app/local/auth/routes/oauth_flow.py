"""The OAuth 2.1 authorization code flow's user side, as GoTrue v2.189's `authorize.go`.

`GET /oauth/authorize` records the client's request and sends the browser to the project's
consent page (`site_url` + `[auth.oauth_server] authorization_url_path`, `?authorization_id=`);
that page, with the user signed in, reads the request (`GET /oauth/authorizations/{id}`) and
answers it (`POST …/consent`, approve or deny), getting back the client's redirect URL with a
code or an error. A request the user already consented to (same client, scopes within the
grant) is approved on reading. `/user/oauth/grants` lists and revokes those consents.

Refusals before the client's redirect URI is known are JSON errors; after, a 302 back to the
client with `error`/`error_description` (RFC 6749 §4.1.2.1).
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from psycopg import AsyncConnection
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from app.local.auth import oauth_clients as clients
from app.local.auth import oauth_grants as grants
from app.local.auth import store
from app.local.auth.errors import AuthApiError, bad_request, json_response, not_found
from app.local.auth.guard import SignedInUser, authenticate
from app.local.auth.issue import config_of, ctx_of
from app.local.auth.otp import redirect_target
from app.local.auth.params import read_body
from app.local.auth.users import rfc3339


def oauth_flow_routes() -> list[Route]:
    return [
        Route("/oauth/authorize", authorize, methods=["GET"]),
        Route("/oauth/authorizations/{authorization_id}", authorization, methods=["GET"]),
        Route("/oauth/authorizations/{authorization_id}/consent", consent, methods=["POST"]),
        Route("/user/oauth/grants", user_grants, methods=["GET", "DELETE"]),
    ]


def with_query(url: str, values: dict[str, str]) -> str:
    """`url` with `values` set in its query (Go's `url.Values.Encode`: keys sorted)."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True)) | values
    return urlunsplit(parts._replace(query=urlencode(sorted(query.items()))))


def _error_redirect(redirect_uri: str, error: str, description: str, state: str) -> Response:
    values = {"error": error, "error_description": description}
    if state:
        values["state"] = state
    return RedirectResponse(with_query(redirect_uri, values), status_code=302)


# --- GET /oauth/authorize -------------------------------------------------------------------------
async def authorize(request: Request) -> Response:
    query = request.query_params
    client_text, redirect_uri = query.get("client_id", ""), query.get("redirect_uri", "")
    if not client_text:
        raise bad_request("validation_failed", "client_id is required")
    if not redirect_uri:
        raise bad_request("validation_failed", "redirect_uri is required")
    try:
        client_id = uuid.UUID(client_text)
    except ValueError as exc:
        raise bad_request("oauth_client_not_found", "invalid client_id format") from exc
    state = query.get("state", "")
    async with store.transaction(ctx_of(request)) as conn:
        client = await clients.find_client(conn, client_id)
        if client is None:
            raise bad_request("oauth_client_not_found", "invalid client_id")
        if redirect_uri not in clients.split_list(client["redirect_uris"]):
            raise bad_request("validation_failed", "invalid redirect_uri")
        scope = query.get("scope", "") or grants.DEFAULT_SCOPE
        problem = _request_problem(query.get("response_type", "") or "code", scope, query)
        if problem:
            return _error_redirect(redirect_uri, "invalid_request", problem, state)
        row = await grants.create_authorization(
            conn,
            client_id=client_id,
            redirect_uri=redirect_uri,
            scope=scope,
            state=state,
            resource=query.get("resource", ""),
            code_challenge=query.get("code_challenge", ""),
            code_challenge_method=query.get("code_challenge_method", ""),
            nonce=query.get("nonce", ""),
        )
    config = config_of(request)
    path = config.oauth_server.authorization_url_path
    if not path:
        return _error_redirect(
            redirect_uri, "server_error", "oauth authorization path not configured", state
        )
    base = config.site_url.rstrip("/") + (path if path.startswith("/") else "/" + path)
    return RedirectResponse(f"{base}?authorization_id={row['authorization_id']}", status_code=302)


def _request_problem(response_type: str, scope: str, query: Any) -> str:
    """`validateRemainingAuthorizeParams`: why the request cannot go on, or ""."""
    if response_type != "code":
        return "only response_type=code is supported"
    scopes = grants.parse_scopes(scope)
    if not scopes:
        return "scope parameter cannot be empty"
    unsupported = [s for s in scopes if s not in grants.SUPPORTED_SCOPES]
    if unsupported:
        return f"unsupported scope: {unsupported[0]}"
    resource = query.get("resource", "")
    if resource:
        parts = urlsplit(resource)
        if not parts.scheme:
            return "resource must be an absolute URI"
        if parts.fragment:
            return "resource must not include a fragment component"
        if parts.query:
            return "resource must not include a query component"
    challenge, method = query.get("code_challenge", ""), query.get("code_challenge_method", "")
    if not challenge or not method:
        return "PKCE flow requires both code_challenge and code_challenge_method"
    if method.lower() not in ("s256", "plain"):
        return "code_challenge_method must be 'S256' or 'plain'"
    if not 43 <= len(challenge) <= 128:
        return "code_challenge must be between 43 and 128 characters"
    return ""


# --- GET /oauth/authorizations/{id} and POST …/consent --------------------------------------------
def _check_origin(request: Request) -> None:
    origin = request.headers.get("origin", "")
    if origin and redirect_target(config_of(request), origin) != origin:
        raise bad_request("validation_failed", "unauthorized request origin")


def _authorization_not_found() -> AuthApiError:
    return not_found("oauth_authorization_not_found", "authorization not found")


async def _pending(
    conn: AsyncConnection[Any], authorization_id: str, *, gone_message: str
) -> store.Row:
    """The pending, unexpired request; an expired one is not found (GoTrue also marks it
    `expired`, a status nothing reads)."""
    row = await grants.find_authorization(conn, authorization_id, lock=True)
    if row is None or row["expired"]:
        raise _authorization_not_found()
    if row["status"] != "pending":
        raise bad_request("validation_failed", gone_message)
    return row


def _success_url(row: store.Row, code: str) -> str:
    values = {"code": code}
    if row["state"]:
        values["state"] = row["state"]
    return with_query(row["redirect_uri"], values)


async def authorization(request: Request) -> Response:
    authorization_id = request.path_params["authorization_id"]
    async with store.transaction(ctx_of(request)) as conn:
        signed_in = await authenticate(request, ctx_of(request).keys, conn)
        _check_origin(request)
        user = signed_in.user
        row = await _pending(
            conn, authorization_id, gone_message="authorization request cannot be processed"
        )
        if row["user_id"] is None:
            await grants.set_user(conn, row["id"], user["id"])
            granted = await grants.active_consent(conn, user["id"], row["client_id"])
            wanted = set(grants.parse_scopes(row["scope"]))
            if granted is not None and wanted <= set(grants.parse_scopes(granted["scopes"])):
                code = await grants.approve(conn, row["id"])
                return json_response({"redirect_url": _success_url(row, code)})
        elif row["user_id"] != user["id"]:
            raise _authorization_not_found()
    return json_response(_details(row, user))


def _details(row: store.Row, user: store.Row) -> dict[str, Any]:
    client = {"id": str(row["client_id"])}
    for key, column in (("name", "client_name"), ("uri", "client_uri"), ("logo_uri", "logo_uri")):
        if row[column]:
            client[key] = row[column]
    details: dict[str, Any] = {
        "authorization_id": row["authorization_id"],
        "redirect_uri": row["redirect_uri"],
        "client": client,
        "user": {"id": str(user["id"])} | ({"email": user["email"]} if user["email"] else {}),
    }
    if row["scope"]:
        details["scope"] = row["scope"]
    return details


async def consent(request: Request) -> Response:
    authorization_id = request.path_params["authorization_id"]
    async with store.transaction(ctx_of(request)) as conn:
        signed_in = await authenticate(request, ctx_of(request).keys, conn)
        _check_origin(request)
        action = _consent_action(await read_body(request))
        row = await _pending(
            conn, authorization_id, gone_message="authorization request cannot be processed"
        )
        if row["user_id"] != signed_in.user["id"]:
            raise _authorization_not_found()
        if action == "approve":
            code = await grants.approve(conn, row["id"])
            await grants.grant_consent(
                conn, signed_in.user["id"], row["client_id"], grants.parse_scopes(row["scope"])
            )
            url = _success_url(row, code)
        else:
            await grants.set_status(conn, row["id"], "denied")
            url = with_query(
                row["redirect_uri"],
                {"error": "access_denied", "error_description": "User denied the request"}
                | ({"state": row["state"]} if row["state"] else {}),
            )
    return json_response({"redirect_url": url})


def _consent_action(raw: bytes) -> str:
    try:
        body = clients.decode_params(raw, ConsentParams)
    except AuthApiError as exc:
        raise bad_request("bad_json", "invalid JSON body") from exc
    if body.action not in ("approve", "deny"):
        raise bad_request("validation_failed", "action must be 'approve' or 'deny'")
    return body.action


class ConsentParams(clients.JsonParams):
    action: str = ""


# --- /user/oauth/grants ---------------------------------------------------------------------------
async def user_grants(request: Request) -> Response:
    async with store.transaction(ctx_of(request)) as conn:
        signed_in = await authenticate(request, ctx_of(request).keys, conn)
        if request.method == "GET":
            rows = await grants.consents_of(conn, signed_in.user["id"])
            return json_response([_grant_json(r) for r in rows])
        return await _revoke(request, conn, signed_in)


async def _revoke(
    request: Request, conn: AsyncConnection[Any], signed_in: SignedInUser
) -> Response:
    text = request.query_params.get("client_id", "")
    if not text:
        raise bad_request("validation_failed", "client_id query parameter is required")
    try:
        client_id = uuid.UUID(text)
    except ValueError as exc:
        raise bad_request("validation_failed", "invalid client_id format") from exc
    found = await grants.active_consent(conn, signed_in.user["id"], client_id)
    if found is None:
        raise not_found("oauth_consent_not_found", "No active grant found for this client")
    await grants.revoke_consent(conn, found["id"], signed_in.user["id"], client_id)
    return Response(status_code=204)


def _grant_json(row: store.Row) -> dict[str, Any]:
    client = {"id": str(row["client_id"])}
    for key, column in (("name", "client_name"), ("uri", "client_uri"), ("logo_uri", "logo_uri")):
        if row[column]:
            client[key] = row[column]
    return {
        "client": client,
        "scopes": grants.parse_scopes(row["scopes"]),
        "granted_at": rfc3339(row["granted_at"]),
    }
