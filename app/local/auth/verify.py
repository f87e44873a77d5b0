"""`/verify` (GET link and POST code or token hash) and the PKCE grant, as GoTrue's verify.go
and token.go do them.

GET follows the mail's link: it answers 303 to `redirect_to` with the session in the fragment
(implicit flow), `?code=` (PKCE: `pkce_` tokens), or the error in the fragment. POST answers the
session as JSON. Every token is single use (cleared when verified) and bounded by `otp_expiry`;
a wrong, spent or expired one is 403 `otp_expired`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from psycopg import AsyncConnection
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from app.local.auth import otp, store
from app.local.auth.config import AuthConfig
from app.local.auth.errors import (
    AuthApiError,
    bad_request,
    forbidden,
    json_response,
    unprocessable,
)
from app.local.auth.issue import config_of, ctx_of, limiter_of, start_session
from app.local.auth.mailer import redirect_of
from app.local.auth.params import (
    PkceGrantBody,
    VerifyBody,
    parse_body,
    validate_email,
    validate_phone,
)
from app.local.auth.ratelimit import Bucket

LINK_INVALID = "Email link is invalid or has expired"
TOKEN_INVALID = "Token has expired or is invalid"
SINGLE_CONFIRMATION = (
    "Confirmation link accepted. Please proceed to confirm link sent to the other email"
)
_OAUTH_ERRORS = {
    400: "invalid_request",
    401: "unauthorized_client",
    403: "access_denied",
    500: "server_error",
    503: "temporarily_unavailable",
}
_HASH_COLUMNS = {
    "email": ("confirmation_token", "recovery_token"),
    "signup": ("confirmation_token",),
    "invite": ("confirmation_token",),
    "recovery": ("recovery_token",),
    "magiclink": ("recovery_token",),
    "email_change": ("email_change_token_new", "email_change_token_current"),
}
_SENT_AT = {
    "signup": "confirmation_sent_at",
    "invite": "confirmation_sent_at",
    "recovery": "recovery_sent_at",
    "magiclink": "recovery_sent_at",
    "email_change": "email_change_sent_at",
}


class _Single(Exception):
    """One of two email-change confirmations accepted; the other is still needed."""


# --- finding the user a token belongs to ---------------------------------------------------------
async def _by_token_hash(
    conn: AsyncConnection[Any], config: AuthConfig, vtype: str, hashed: str
) -> tuple[store.Row, str]:
    """GoTrue's verifyTokenHash: the user whose token is `hashed`, and the effective type."""
    columns = _HASH_COLUMNS.get(vtype)
    if columns is None:
        raise bad_request("validation_failed", "Invalid email verification type")
    user = await store.find_user_by_token(conn, columns, hashed)
    if user is None:
        raise forbidden("otp_expired", LINK_INVALID)
    if store.is_banned(user):
        raise forbidden("user_banned", "User is banned")
    if vtype == "email":
        vtype = "magiclink" if user["recovery_token"] == hashed else "signup"
    if otp.expired(user[_SENT_AT[vtype]], config.email.otp_expiry):
        raise forbidden("otp_expired", LINK_INVALID)
    return user, vtype


async def _by_email_and_code(
    conn: AsyncConnection[Any], config: AuthConfig, body: VerifyBody
) -> tuple[store.Row, str]:
    """GoTrue's verifyUserAndToken for email codes; SMS types find no user (no phone provider)."""
    if body.type in ("sms", "phone_change"):
        raise forbidden("otp_expired", TOKEN_INVALID)
    email = validate_email(body.email)
    hashed = otp.token_hash(email, body.token)
    if body.type == "email_change":
        user = await store.fetch_one(
            conn,
            "select * from auth.users where (lower(email) = %s or lower(email_change) = %s)"
            " and is_sso_user = false for update",
            (email, email),
        )
    else:
        user = await store.find_user_by_email(conn, email)
    if user is None:
        raise forbidden("otp_expired", TOKEN_INVALID)
    if store.is_banned(user):
        raise forbidden("user_banned", "User is banned")
    expiry = config.email.otp_expiry

    def valid(column: str, sent: str) -> bool:
        return otp.otp_matches(hashed, user[column]) and not otp.expired(user[sent], expiry)

    vtype = body.type
    if vtype == "email":
        if valid("confirmation_token", "confirmation_sent_at"):
            vtype = "signup"
        elif valid("recovery_token", "recovery_sent_at"):
            vtype = "magiclink"
        else:
            raise forbidden("otp_expired", TOKEN_INVALID)
    elif vtype in ("signup", "invite"):
        ok = valid("confirmation_token", "confirmation_sent_at")
    elif vtype in ("recovery", "magiclink"):
        ok = valid("recovery_token", "recovery_sent_at")
    elif vtype == "email_change":
        ok = valid("email_change_token_current", "email_change_sent_at") or valid(
            "email_change_token_new", "email_change_sent_at"
        )
    else:
        ok = False
    if vtype != body.type or ok:
        return user, vtype
    raise forbidden("otp_expired", TOKEN_INVALID)


# --- what a verified token does ------------------------------------------------------------------
async def _apply(
    conn: AsyncConnection[Any], config: AuthConfig, user: store.Row, vtype: str, hashed: str
) -> store.Row:
    """Confirm, sign in or change the email; clear the token so it is never accepted twice."""
    changes: dict[str, Any] = {}
    if vtype in ("signup", "invite"):
        changes["confirmation_token"] = ""
    elif vtype in ("recovery", "magiclink"):
        changes["recovery_token"] = ""
    elif vtype == "email_change":
        return await _apply_email_change(conn, config, user, hashed)
    else:
        raise bad_request("validation_failed", "Unsupported verification type")
    if user["email_confirmed_at"] is None:
        changes["email_confirmed_at"] = store.NOW
    updated = await store.update_user(conn, user["id"], changes)
    assert updated is not None
    await _mark_email_verified(conn, updated)
    return updated


async def _apply_email_change(
    conn: AsyncConnection[Any], config: AuthConfig, user: store.Row, hashed: str
) -> store.Row:
    both_pending = user["email_change_token_current"] and user["email_change_token_new"]
    if (
        config.email.enable_confirmations
        and config.email.double_confirm_changes
        and user["email_change_confirm_status"] == 0
        and both_pending
    ):
        spent = (
            "email_change_token_current"
            if otp.otp_matches(hashed, user["email_change_token_current"])
            else "email_change_token_new"
        )
        await store.update_user(conn, user["id"], {spent: "", "email_change_confirm_status": 1})
        raise _Single
    new_email = user["email_change"]
    changes: dict[str, Any] = {
        "email": new_email,
        "email_change": "",
        "email_change_token_new": "",
        "email_change_token_current": "",
        "email_change_confirm_status": 0,
        "is_anonymous": False,
    }
    if user["email_confirmed_at"] is None:
        changes["email_confirmed_at"] = store.NOW
    updated = await store.update_user(conn, user["id"], changes)
    assert updated is not None
    await store.set_email_identity(conn, user["id"], new_email)
    await _mark_email_verified(conn, updated)
    return updated


async def _mark_email_verified(conn: AsyncConnection[Any], user: store.Row) -> None:
    await store.fetch_all(
        conn,
        "update auth.identities set identity_data = identity_data"
        " || '{\"email_verified\": true}'::jsonb, updated_at = now()"
        " where user_id = %s and provider = 'email' returning id",
        (user["id"],),
    )


# --- the routes ----------------------------------------------------------------------------------
async def verify_endpoint(request: Request) -> Response:
    limiter_of(request).check(request, Bucket.VERIFY)
    if request.method == "GET":
        return await _verify_get(request)
    return await _verify_post(request)


async def _verify_post(request: Request) -> Response:
    config = config_of(request)
    body = await parse_body(request, VerifyBody)
    if not body.type:
        raise bad_request("validation_failed", "Verify requires a verification type")
    if bool(body.token) == bool(body.token_hash):
        raise bad_request("validation_failed", "Verify requires either a token or a token hash")
    if body.token and body.phone and not body.email:
        validate_phone(body.phone)  # GoTrue checks the format before looking anything up
    if body.token and body.type not in ("sms", "phone_change") and not body.email:
        raise bad_request(
            "validation_failed",
            "Only an email address or phone number should be provided on verify",
        )
    if body.token_hash and (body.email or body.phone or body.redirect_to):
        raise bad_request("validation_failed", "Only the token_hash and type should be provided")
    single = False
    async with store.transaction(ctx_of(request)) as conn:
        if body.token_hash:
            user, vtype = await _by_token_hash(conn, config, body.type, body.token_hash)
            hashed = body.token_hash
        else:
            user, vtype = await _by_email_and_code(conn, config, body)
            hashed = otp.token_hash(validate_email(body.email), body.token)
        try:
            user = await _apply(conn, config, user, vtype, hashed)
        except _Single:
            single = True
        else:
            session = await start_session(request, conn, user, amr_method="otp")
    if single:
        return json_response({"msg": SINGLE_CONFIRMATION, "code": "200"})
    return json_response(session)


async def _verify_get(request: Request) -> Response:
    config = config_of(request)
    vtype = request.query_params.get("type", "")
    token = request.query_params.get("token", "")
    if not vtype:
        raise bad_request("validation_failed", "Verify requires a verification type")
    if not token:
        raise bad_request("validation_failed", "Verify requires a token or a token hash")
    redirect_to = redirect_of(request)
    pkce = token.startswith(otp.PKCE_PREFIX)
    if pkce and vtype not in otp.AUTH_METHODS:
        raise bad_request("validation_failed", f"unsupported authentication method {vtype}")
    try:
        async with store.transaction(ctx_of(request)) as conn:
            user, effective = await _by_token_hash(conn, config, vtype, token)
            try:
                user = await _apply(conn, config, user, effective, token)
            except _Single:
                return _see_other(_with_fragment(redirect_to, {"message": SINGLE_CONFIRMATION}))
            if pkce:
                code = await otp.issue_auth_code(conn, user["id"], otp.AUTH_METHODS[vtype])
                return _see_other(_with_query(redirect_to, {"code": code}))
            session = await start_session(request, conn, user, amr_method="otp")
    except AuthApiError as exc:
        return _see_other(_error_redirect(redirect_to, exc, pkce=pkce))
    fragment = {
        "access_token": session["access_token"],
        "expires_at": str(session["expires_at"]),
        "expires_in": str(session["expires_in"]),
        "refresh_token": session["refresh_token"],
        "token_type": "bearer",
        "type": vtype,
    }
    return _see_other(_with_fragment(redirect_to, fragment))


def _see_other(url: str) -> Response:
    return RedirectResponse(url, status_code=303)


def _with_fragment(url: str, values: dict[str, str]) -> str:
    values = values | {"sb": ""}
    return url + "#" + urlencode(sorted(values.items()))


def _with_query(url: str, values: dict[str, str]) -> str:
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode(values)) if q)
    return urlunsplit(parts._replace(query=query))


def _error_redirect(url: str, exc: AuthApiError, *, pkce: bool) -> str:
    values = {"error_code": exc.code, "error_description": exc.message}
    if exc.status in _OAUTH_ERRORS:
        values["error"] = _OAUTH_ERRORS[exc.status]
    base = _with_query(url, values) if pkce else url
    return _with_fragment(base, values)


# --- grant_type=pkce -----------------------------------------------------------------------------
async def pkce_grant(request: Request) -> Response:
    body = await parse_body(request, PkceGrantBody)
    if not body.auth_code or not body.code_verifier:
        raise bad_request(
            "validation_failed",
            "invalid request: both auth code and code verifier should be non-empty",
        )
    async with store.transaction(ctx_of(request)) as conn:
        flow = await otp.take_flow_state(conn, body.auth_code, body.code_verifier)
        user = await store.find_user(conn, flow["user_id"])
        if user is None:
            raise unprocessable("user_not_found", "User not found")
        session = await start_session(request, conn, user, amr_method=flow["authentication_method"])
    return json_response(session)
