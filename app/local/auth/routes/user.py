"""The signed-in user's own routes: `GET /user`, `PUT /user` (metadata, password, email) and
`POST /logout` (global, local, others)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from app.local.auth import flows, otp, sessions, store
from app.local.auth.errors import (
    EMAIL_EXISTS,
    AuthApiError,
    bad_request,
    json_response,
    unprocessable,
)
from app.local.auth.factors import factor_json, factors_of
from app.local.auth.guard import authenticate, check_audience
from app.local.auth.issue import config_of, limiter_of, user_response
from app.local.auth.params import (
    UserUpdateBody,
    check_password_strength,
    decode_body,
    read_body,
    validate_email,
)
from app.local.auth.passwords import hash_password, password_matches
from app.local.auth.ratelimit import Bucket
from app.local.auth.users import merge_metadata, user_json
from app.local.context import StackContext


async def user_endpoint(request: Request) -> Response:
    ctx: StackContext = request.app.state.ctx
    if request.method == "PUT":
        return await _update_user(request)
    async with store.read(ctx) as conn:
        caller = await authenticate(request, ctx.keys, conn)
        check_audience(request, caller.claims)
        factors = (await factors_of(conn, [caller.user["id"]]))[caller.user["id"]]
    return json_response(
        user_json(caller.user, caller.identities, [factor_json(f) for f in factors])
    )


async def _update_user(request: Request) -> Response:
    """PUT /user: metadata (merged), password (other sessions end), email (applied at once)."""
    ctx: StackContext = request.app.state.ctx
    raw = await read_body(request)
    async with store.read(ctx) as conn:
        caller = await authenticate(request, ctx.keys, conn)
    body = decode_body(raw, UserUpdateBody)
    user = caller.user
    email = validate_email(body.email) if body.email else ""
    if body.phone:
        raise unprocessable("phone_provider_disabled", "Phone logins are disabled")
    pkce = otp.pkce_requested(body.code_challenge_method, body.code_challenge)
    if user["is_anonymous"] and body.password and not email:
        raise unprocessable(
            "validation_failed",
            "Updating password of an anonymous user without an email or phone is not allowed",
        )
    if body.password is not None:
        check_password_strength(body.password)
    if body.app_metadata is not None:
        raise AuthApiError(403, "not_admin", "Updating app_metadata requires admin privileges")
    config = config_of(request)
    limiter_of(request).check(request, Bucket.SIGN_IN_SIGN_UPS)
    changes: dict[str, Any] = {}
    email_to_confirm = ""
    async with store.read(ctx) as conn:
        if email and email != user["email"]:
            if await store.email_taken(conn, email, except_id=user["id"]):
                raise unprocessable("email_exists", EMAIL_EXISTS)
            if user["is_anonymous"] and not config.email.enable_confirmations:
                # GoTrue: an anonymous user adding an email with autoconfirm is a sign-up.
                changes |= {
                    "email": email,
                    "is_anonymous": False,
                    "email_confirmed_at": store.NOW,
                    "raw_app_meta_data": dict(store.EMAIL_APP_METADATA),
                }
            else:
                email_to_confirm = email  # permanent users always confirm by mail (GoTrue)
    if body.password:
        if await password_matches(body.password, user["encrypted_password"]):
            raise unprocessable(
                "same_password", "New password should be different from the old password."
            )
        changes["encrypted_password"] = await hash_password(body.password)
    if body.data is not None:
        changes["raw_user_meta_data"] = merge_metadata(user["raw_user_meta_data"], body.data)
    async with store.transaction(ctx) as conn:
        if body.password and config.email.secure_password_change:
            if not body.nonce:
                raise bad_request(
                    "reauthentication_needed", "Password update requires reauthentication"
                )
            await flows.verify_nonce(request, conn, user, body.nonce)
        updated = await store.update_user(conn, user["id"], changes) if changes else user
        if updated is None:
            raise AuthApiError(403, "user_not_found", "User from sub claim in JWT does not exist")
        if email_to_confirm:
            challenge = (body.code_challenge_method, body.code_challenge) if pkce else None
            updated = await flows.send_email_change(
                request, conn, updated, email_to_confirm, pkce=pkce, challenge=challenge
            )
        if "email" in changes:
            await store.set_email_identity(conn, user["id"], email)
        if "encrypted_password" in changes:
            # GoTrue's UpdatePassword: every other session must sign in again.
            await sessions.end_sessions(conn, user["id"], keep=caller.session_id)
        return await user_response(conn, updated)


async def logout(request: Request) -> Response:
    ctx: StackContext = request.app.state.ctx
    async with store.transaction(ctx) as conn:
        caller = await authenticate(request, ctx.keys, conn)
        scope = request.query_params.get("scope", "global") or "global"
        if scope not in ("global", "local", "others"):
            raise bad_request("validation_failed", f'Unsupported logout scope "{scope}"')
        user_id = caller.user["id"]
        if caller.session_id is None:
            await sessions.revoke_refresh_tokens(conn, user_id)
        elif scope == "local":
            await sessions.end_sessions(conn, user_id, only=caller.session_id)
        elif scope == "others":
            await sessions.end_sessions(conn, user_id, keep=caller.session_id)
        else:
            await sessions.end_sessions(conn, user_id)
    return Response(status_code=204)
