"""`POST /signup`: email and password (autoconfirm, or a confirmation mail with
`enable_confirmations`), and GoTrue's SignupAnonymously when neither email nor phone is given."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from starlette.requests import Request
from starlette.responses import Response

from app.local.auth import flows, otp, sessions, store
from app.local.auth.errors import AuthApiError, bad_request, json_response, unprocessable
from app.local.auth.issue import (
    client_info,
    config_of,
    limiter_of,
    session_response,
    user_response,
)
from app.local.auth.params import (
    OtpBody,
    SignupBody,
    check_password_strength,
    parse_body,
    validate_email,
)
from app.local.auth.passwords import hash_password
from app.local.auth.ratelimit import Bucket
from app.local.auth.users import merge_metadata, user_json
from app.local.context import StackContext


async def signup(request: Request) -> Response:
    ctx: StackContext = request.app.state.ctx
    config = config_of(request)
    body = await parse_body(request, SignupBody)
    if not body.email and not body.phone:
        return await _anonymous_signup(request, body)
    limiter_of(request).check(request, Bucket.SIGN_IN_SIGN_UPS)
    if not config.enable_signup or not config.email.enable_signup:
        raise unprocessable("signup_disabled", "Signups not allowed for this instance")
    if not body.password:
        raise bad_request("validation_failed", "Signup requires a valid password")
    check_password_strength(body.password)
    if body.email and body.phone:
        raise bad_request(
            "validation_failed",
            "Only an email address or phone number should be provided on signup.",
        )
    if body.phone:
        raise unprocessable("phone_provider_disabled", "Phone signups are disabled")
    if not body.email:
        raise bad_request("validation_failed", "To signup, please provide your email")
    email = validate_email(body.email)
    pkce = otp.pkce_requested(body.code_challenge_method, body.code_challenge)
    if config.email.enable_confirmations:
        return await _signup_to_confirm(request, body, email, pkce=pkce)
    async with store.read(ctx) as conn:
        taken = await store.email_taken(conn, email)
    if taken:
        raise _already_registered()
    encrypted = await hash_password(body.password)
    new = store.NewUser(
        email=email,
        encrypted_password=encrypted,
        confirmed=True,  # local projects autoconfirm (`enable_confirmations = false`)
        signed_in=True,
        user_metadata=body.data or {},
        app_metadata=dict(store.EMAIL_APP_METADATA),
    )
    try:
        async with store.transaction(ctx) as conn:
            user = await store.insert_user(conn, new)
            session_id, refresh = await sessions.start_session(
                conn, user["id"], **client_info(request)
            )
            identities = (await store.identities_of(conn, [user["id"]]))[user["id"]]
    except psycopg.errors.UniqueViolation as exc:  # a concurrent signup won the race
        raise _already_registered() from exc
    return session_response(ctx, user, identities, session_id, refresh, config=config_of(request))


async def _signup_to_confirm(
    request: Request, body: SignupBody, email: str, *, pkce: bool
) -> Response:
    """`enable_confirmations = true`: a user (no session) and a confirmation mail. A confirmed
    email gets a look-alike user with a random id, so the answer tells nothing (GoTrue)."""
    ctx: StackContext = request.app.state.ctx
    encrypted = await hash_password(body.password)
    async with store.transaction(ctx) as conn:
        user = await store.find_user_by_email(conn, email)
        if user is not None and user["email_confirmed_at"] is not None:
            fake = dict(user) | {"id": uuid.uuid4(), "raw_user_meta_data": body.data or {}}
            return json_response(user_json(fake, []))
        if user is None:
            user = await flows.new_email_user(
                conn, email, confirmed=False, data=body.data, encrypted_password=encrypted
            )
        else:
            changes: dict[str, Any] = {"encrypted_password": encrypted}
            if body.data is not None:
                changes["raw_user_meta_data"] = merge_metadata(
                    user["raw_user_meta_data"], body.data
                )
            user = await store.update_user(conn, user["id"], changes) or user
        challenge = params_otp(body.code_challenge, body.code_challenge_method) if pkce else None
        user = await flows.send_confirmation(request, conn, user, pkce=challenge)
        return await user_response(conn, user)


def params_otp(challenge: str, method: str) -> OtpBody:
    return OtpBody(code_challenge=challenge, code_challenge_method=method)


async def _anonymous_signup(request: Request, body: SignupBody) -> Response:
    """GoTrue's SignupAnonymously: no email, no phone, no identity; `is_anonymous` is true."""
    ctx: StackContext = request.app.state.ctx
    config = config_of(request)
    if not config.enable_anonymous_sign_ins:
        raise unprocessable("anonymous_provider_disabled", "Anonymous sign-ins are disabled")
    limiter_of(request).check(request, Bucket.ANONYMOUS)
    if not config.enable_signup:
        raise unprocessable("signup_disabled", "Signups not allowed for this instance")
    new = store.NewUser(
        email=None,
        encrypted_password="",
        confirmed=False,
        signed_in=True,
        user_metadata=body.data or {},
        app_metadata={},
        is_anonymous=True,
    )
    async with store.transaction(ctx) as conn:
        user = await store.insert_user(conn, new)
        session_id, refresh = await sessions.start_session(
            conn, user["id"], **client_info(request), amr_method="anonymous"
        )
    return session_response(
        ctx, user, [], session_id, refresh, config=config, amr_method="anonymous"
    )


def _already_registered() -> AuthApiError:
    return unprocessable("user_already_exists", "User already registered")
