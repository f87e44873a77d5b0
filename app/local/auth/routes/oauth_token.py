"""`POST /oauth/token` and `GET /oauth/userinfo`: the OAuth 2.1 server's client side, as GoTrue
v2.189's `requireOAuthClientAuth`, `OAuthToken` and `OAuthUserInfo`.

The client authenticates with the method it registered: HTTP Basic (`client_secret_basic`),
`client_id` + `client_secret` in the body (`client_secret_post`) or `client_id` alone (`none`,
a public client, which PKCE protects). Bodies are JSON or form-encoded. A code is exchanged
once for a session bound to the client (`auth.sessions.oauth_client_id`, with the granted
scopes); that session's refresh token is then good only with the same client.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.local.auth import oauth_clients as clients
from app.local.auth import oauth_grants as grants
from app.local.auth import oauth_tokens, sessions, store
from app.local.auth.errors import OAuthError, bad_request, json_response
from app.local.auth.guard import authenticate
from app.local.auth.issue import client_info, config_of, ctx_of, session_body
from app.local.auth.params import read_body
from app.local.auth.routes.token import reuse_interval

AMR_METHOD = "oauth_provider/authorization_code"
_FIELDS = (
    "grant_type",
    "code",
    "refresh_token",
    "redirect_uri",
    "client_id",
    "client_secret",
    "code_verifier",
    "resource",
)


def oauth_token_routes() -> list[Route]:
    return [
        Route("/oauth/token", token, methods=["POST"]),
        Route("/oauth/userinfo", userinfo, methods=["GET"]),
    ]


def _fields(request: Request, raw: bytes) -> dict[str, str]:
    """The token request's string fields from a JSON or a form body (and, for a form, the
    query string, as Go's `FormValue` reads both)."""
    if "application/json" in request.headers.get("content-type", ""):
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise OAuthError("invalid_request", "Invalid JSON body") from exc
        if not isinstance(data, dict):
            raise OAuthError("invalid_request", "Invalid JSON body")
        return {k: v for k, v in data.items() if k in _FIELDS and isinstance(v, str)}
    form = dict(request.query_params) | dict(parse_qsl(raw.decode(errors="replace")))
    return {k: v for k, v in form.items() if k in _FIELDS}


async def _authenticated_client(request: Request, conn: Any, fields: dict[str, str]) -> store.Row:
    """`requireOAuthClientAuth`: the client whose credentials came, by its registered method."""
    client_id, secret, method = _credentials(request, fields)
    try:
        uid = uuid.UUID(client_id)
    except ValueError as exc:
        raise bad_request("invalid_credentials", "Invalid client_id format") from exc
    client = await clients.find_client(conn, uid)
    if client is None:
        raise bad_request("invalid_credentials", "Invalid client credentials")
    registered = client["token_endpoint_auth_method"]
    if method != registered:
        raise bad_request(
            "invalid_credentials",
            f"invalid authentication method: client is registered for '{registered}'"
            f" but '{method}' was used",
        )
    if client["client_type"] == clients.PUBLIC:
        if secret:
            raise bad_request(
                "invalid_credentials", "public clients must not provide client_secret"
            )
    elif not secret:
        raise bad_request("invalid_credentials", "confidential clients must provide client_secret")
    elif not clients.secret_matches(secret, client["client_secret_hash"]):
        raise bad_request("invalid_credentials", "invalid client credentials")
    return client


def _credentials(request: Request, fields: dict[str, str]) -> tuple[str, str, str]:
    header = request.headers.get("authorization", "")
    if header.startswith("Basic "):
        try:
            decoded = base64.b64decode(header.removeprefix("Basic "), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise _bad_credentials("invalid basic auth encoding") from exc
        client_id, colon, secret = decoded.partition(":")
        if not colon:
            raise _bad_credentials("invalid basic auth format")
        return client_id, secret, clients.SECRET_BASIC
    client_id, secret = fields.get("client_id", ""), fields.get("client_secret", "")
    if not client_id:
        raise _bad_credentials("client_id is required")
    return client_id, secret, clients.SECRET_POST if secret else clients.NONE


def _bad_credentials(reason: str) -> Exception:
    return bad_request("invalid_credentials", f"Invalid client credentials: {reason}")


async def token(request: Request) -> Response:
    raw = await read_body(request)
    fields = _fields(request, raw)
    async with store.transaction(ctx_of(request)) as conn:
        client = await _authenticated_client(request, conn, fields)
        grant_type = fields.get("grant_type", "")
        if not grant_type:
            raise OAuthError("invalid_request", "grant_type is required")
        if grant_type not in clients.split_list(client["grant_types"]):
            raise OAuthError(
                "unsupported_grant_type", f"Client is not allowed to use grant type: {grant_type}"
            )
        if grant_type == "authorization_code":
            body = await _exchange_code(request, conn, client, fields)
        elif grant_type == "refresh_token":
            body = await _refresh(request, conn, client, fields)
        else:
            raise OAuthError("unsupported_grant_type", f"Unsupported grant type: {grant_type}")
    return json_response(body)


async def _exchange_code(
    request: Request, conn: Any, client: store.Row, fields: dict[str, str]
) -> dict[str, Any]:
    code = fields.get("code", "")
    if not code:
        raise OAuthError("invalid_request", "code is required for authorization_code grant")
    row = await grants.find_by_code(conn, code)
    if row is None:
        raise OAuthError("invalid_grant", "Invalid authorization code")
    if row["expired"]:
        raise OAuthError("invalid_grant", "Authorization code has expired")
    if row["client_id"] != client["id"]:
        raise OAuthError("invalid_grant", "Authorization code was not issued for this client")
    resource = fields.get("resource", "")
    if resource and resource != (row["resource"] or ""):
        raise OAuthError(
            "invalid_grant", "Authorization code resource does not match the resource parameter"
        )
    redirect_uri = fields.get("redirect_uri", "")
    if redirect_uri and redirect_uri != row["redirect_uri"]:
        raise OAuthError("invalid_grant", "Invalid redirect_uri")
    _verify_pkce(row, fields.get("code_verifier", ""))
    user = await store.find_user(conn, row["user_id"]) if row["user_id"] else None
    if user is None:
        raise OAuthError("invalid_grant", "Authorization code has no associated user")
    if store.is_banned(user):
        raise OAuthError("access_denied", "User is banned")
    user = await store.record_sign_in(conn, user["id"]) or user
    session_id, refresh = await sessions.start_session(conn, user["id"], **client_info(request))
    await grants.bind_session(conn, session_id, client["id"], row["scope"])
    await grants.spend(conn, row["id"])
    body = await _token_body(request, conn, user, session_id, refresh, client, row["scope"])
    scopes = grants.parse_scopes(row["scope"])
    if "openid" in scopes:
        ctx = ctx_of(request)
        body["id_token"] = oauth_tokens.id_token(
            ctx.keys,
            issuer=ctx.jwt_issuer,
            user=user,
            client_id=str(client["id"]),
            scopes=scopes,
            nonce=row["nonce"] or "",
        )
    return body


def _verify_pkce(row: store.Row, verifier: str) -> None:
    challenge = row["code_challenge"]
    if not challenge:
        return
    if not verifier:
        raise OAuthError(
            "invalid_grant",
            "PKCE verification failed: code_verifier is required when PKCE challenge is present",
        )
    if not grants.pkce_matches(challenge, row["code_challenge_method"] or "", verifier):
        raise OAuthError(
            "invalid_grant",
            "PKCE verification failed: code challenge does not match previously saved code"
            " verifier",
        )


async def _refresh(
    request: Request, conn: Any, client: store.Row, fields: dict[str, str]
) -> dict[str, Any]:
    refresh_token = fields.get("refresh_token", "")
    if not refresh_token:
        raise OAuthError("invalid_request", "refresh_token is required for refresh_token grant")
    session = await grants.session_client(conn, refresh_token)
    scope = session["scopes"] or "" if session is not None else ""
    if session is not None:
        if session["oauth_client_id"] is None:
            raise OAuthError(
                "invalid_client", "Client authentication not allowed for non-OAuth session"
            )
        if session["oauth_client_id"] != client["id"]:
            raise OAuthError("invalid_client", "Client does not match the session's OAuth client")
    result = await sessions.rotate_refresh_token(
        conn,
        refresh_token,
        reuse_interval=reuse_interval(config_of(request)),
        **client_info(request),
    )
    outcome = result.outcome
    if outcome is sessions.RefreshOutcome.NOT_FOUND:
        raise bad_request(
            "refresh_token_not_found", "Invalid Refresh Token: Refresh Token Not Found"
        )
    if outcome is sessions.RefreshOutcome.NO_SESSION:
        raise bad_request("session_not_found", "Invalid Refresh Token: No Valid Session Found")
    if outcome is sessions.RefreshOutcome.BANNED:
        raise bad_request("user_banned", "Invalid Refresh Token: User Banned")
    if outcome is sessions.RefreshOutcome.REUSED:
        raise bad_request("refresh_token_already_used", "Invalid Refresh Token: Already Used")
    assert result.user is not None
    assert result.session_id is not None
    return await _token_body(
        request, conn, result.user, result.session_id, result.token, client, scope
    )


async def _token_body(
    request: Request,
    conn: Any,
    user: store.Row,
    session_id: uuid.UUID,
    refresh: str,
    client: store.Row,
    scope: str,
) -> dict[str, Any]:
    """GoTrue's OAuth token answer: the session's tokens, without the user."""
    ctx = ctx_of(request)
    identities = (await store.identities_of(conn, [user["id"]]))[user["id"]]
    body = session_body(
        ctx, config_of(request), user, identities, session_id, refresh, amr_method=AMR_METHOD
    )
    access_token = oauth_tokens.bind_to_client(
        ctx.keys, body["access_token"], str(client["id"]), scope
    )
    return {
        "access_token": access_token,
        "token_type": body["token_type"],
        "expires_in": body["expires_in"],
        "refresh_token": body["refresh_token"],
    }


async def userinfo(request: Request) -> Response:
    """OIDC UserInfo: `sub`, plus what the session's scopes allow."""
    async with store.read(ctx_of(request)) as conn:
        signed_in = await authenticate(request, ctx_of(request).keys, conn)
        scopes = (
            await grants.session_scopes(conn, signed_in.session_id)
            if signed_in.session_id
            else None
        )
    user = signed_in.user
    info: dict[str, Any] = {"sub": str(user["id"])}
    if scopes is None:
        return json_response(info)
    meta: dict[str, Any] = user["raw_user_meta_data"] or {}
    if "email" in scopes:
        if user["email"]:
            info["email"] = user["email"]
        if user["email_confirmed_at"] is not None:
            info["email_verified"] = True
    if "profile" in scopes:
        info |= oauth_tokens.profile_claims(user)
        info["user_metadata"] = meta
    if "phone" in scopes:
        if user["phone"]:
            info["phone"] = user["phone"]
        if user["phone_confirmed_at"] is not None:
            info["phone_verified"] = True
    return json_response(info)
