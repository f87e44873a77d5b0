"""The email flows that start with a mail: `/otp` (and `/magiclink`), `/recover`, `/resend`,
`/reauthenticate`, `/invite`, sign-up confirmation and email change — as GoTrue's handlers
(otp.go, magic_link.go, recover.go, resend.go, reauthenticate.go, invite.go, signup.go).

Each answers as GoTrue does, including the answers that do not tell whether an email exists
(`{}` for an unknown address on `/recover` and `/resend`). The mails land in the local sink.
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection
from starlette.requests import Request
from starlette.responses import Response

from app.local.auth import mailer, otp, store
from app.local.auth.errors import EMAIL_EXISTS, bad_request, forbidden, json_response, unprocessable
from app.local.auth.guard import authenticate, require_admin
from app.local.auth.issue import config_of, ctx_of, limiter_of
from app.local.auth.params import (
    InviteBody,
    OtpBody,
    RecoverBody,
    ResendBody,
    parse_body,
    validate_email,
)
from app.local.auth.ratelimit import Bucket
from app.local.auth.users import user_json

INVALID_NONCE = "Nonce has expired or is invalid"


def _empty() -> Response:
    return json_response({})


async def new_email_user(
    conn: AsyncConnection[Any],
    email: str,
    *,
    confirmed: bool,
    data: dict[str, Any] | None,
    encrypted_password: str = "",
    invited: bool = False,
) -> store.Row:
    return await store.insert_user(
        conn,
        store.NewUser(
            email=email,
            encrypted_password=encrypted_password,
            confirmed=confirmed,
            user_metadata=data or {},
            app_metadata=dict(store.EMAIL_APP_METADATA),
            invited=invited,
        ),
    )


async def send_confirmation(
    request: Request, conn: AsyncConnection[Any], user: store.Row, *, pkce: OtpBody | None
) -> store.Row:
    """The sign-up confirmation mail (with PKCE flow state when the request had a challenge)."""
    if pkce is not None:
        await mailer.start_flow(
            conn,
            user["id"],
            method=pkce.code_challenge_method,
            challenge=pkce.code_challenge,
            authentication_method=otp.AUTH_METHODS["signup"],
        )
    return await mailer.send(request, conn, user, mailer.SIGNUP, pkce=pkce is not None)


# --- /otp and /magiclink -------------------------------------------------------------------------
async def otp_endpoint(request: Request) -> Response:
    limiter_of(request).check(request, Bucket.SIGN_IN_SIGN_UPS)
    body = await parse_body(request, OtpBody)
    if body.email and body.phone:
        raise bad_request(
            "validation_failed", "Only an email address or phone number should be provided"
        )
    if body.email and body.channel:
        raise bad_request("validation_failed", "Channel should only be specified with Phone OTP")
    otp.pkce_requested(body.code_challenge_method, body.code_challenge)
    if body.phone:
        raise bad_request("phone_provider_disabled", "Unsupported phone provider")
    if not body.email:
        raise bad_request("validation_failed", "One of email or phone must be set")
    return await _magic_link(request, body)


async def magiclink_endpoint(request: Request) -> Response:
    limiter_of(request).check(request, Bucket.SIGN_IN_SIGN_UPS)
    body = await parse_body(request, OtpBody)
    if not body.email:
        raise unprocessable("validation_failed", "Password recovery requires an email")
    otp.pkce_requested(body.code_challenge_method, body.code_challenge)
    return await _magic_link(request, body)


async def _magic_link(request: Request, body: OtpBody) -> Response:
    """GoTrue's MagicLink: a confirmed user gets a magic link; an unknown (or unconfirmed) one is
    signed up first — autoconfirmed then sent the link, or sent the sign-up confirmation."""
    config = config_of(request)
    if not config.email.enable_signup:
        raise unprocessable("email_provider_disabled", "Email logins are disabled")
    email = validate_email(body.email)
    pkce = body.code_challenge != ""
    async with store.transaction(ctx_of(request)) as conn:
        user = await store.find_user_by_email(conn, email)
        if user is None and not body.create_user:
            raise unprocessable("otp_disabled", "Signups not allowed for otp")
        if user is None or user["email_confirmed_at"] is None:
            if not config.enable_signup:
                raise unprocessable("signup_disabled", "Signups not allowed for this instance")
            autoconfirm = not config.email.enable_confirmations
            if user is None:
                user = await new_email_user(conn, email, confirmed=autoconfirm, data=body.data)
            if not autoconfirm:
                await send_confirmation(request, conn, user, pkce=body if pkce else None)
                return _empty()
        if pkce:
            await mailer.start_flow(
                conn,
                user["id"],
                method=body.code_challenge_method,
                challenge=body.code_challenge,
                authentication_method=otp.AUTH_METHODS["magiclink"],
            )
        await mailer.send(request, conn, user, mailer.MAGICLINK, pkce=pkce)
    return _empty()


# --- /recover ------------------------------------------------------------------------------------
async def recover_endpoint(request: Request) -> Response:
    limiter_of(request).check(request, Bucket.SIGN_IN_SIGN_UPS)
    body = await parse_body(request, RecoverBody)
    pkce = otp.pkce_requested(body.code_challenge_method, body.code_challenge)
    if not body.email:
        raise bad_request("validation_failed", "Password recovery requires an email")
    email = validate_email(body.email)
    async with store.transaction(ctx_of(request)) as conn:
        user = await store.find_user_by_email(conn, email)
        if user is None:
            return _empty()  # the same answer: an unknown email is not revealed
        if pkce:
            await mailer.start_flow(
                conn,
                user["id"],
                method=body.code_challenge_method,
                challenge=body.code_challenge,
                authentication_method=otp.AUTH_METHODS["recovery"],
            )
        await mailer.send(request, conn, user, mailer.RECOVERY, pkce=pkce)
    return _empty()


# --- /resend -------------------------------------------------------------------------------------
async def resend_endpoint(request: Request) -> Response:
    limiter_of(request).check(request, Bucket.SIGN_IN_SIGN_UPS)
    body = await parse_body(request, ResendBody)
    if body.type not in ("signup", "email_change", "sms", "phone_change"):
        raise bad_request(
            "validation_failed",
            "Missing one of these types: signup, email_change, sms, phone_change",
        )
    if not body.email and body.type == "signup":
        raise bad_request("validation_failed", "Type provided requires an email address")
    if not body.phone and body.type == "sms":
        raise bad_request("validation_failed", "Type provided requires a phone number")
    if body.email and body.phone:
        raise bad_request(
            "validation_failed", "Only an email address or phone number should be provided."
        )
    if body.phone:
        raise bad_request("phone_provider_disabled", "Phone logins are disabled")
    if not body.email:
        raise bad_request("validation_failed", "Missing email address or phone number")
    pkce = otp.pkce_requested(body.code_challenge_method, body.code_challenge)
    email = validate_email(body.email)
    async with store.transaction(ctx_of(request)) as conn:
        user = await store.find_user_by_email(conn, email)
        if user is None:
            return _empty()
        if body.type == "signup":
            if user["email_confirmed_at"] is None:
                await send_confirmation(
                    request, conn, user, pkce=body_as_otp(body) if pkce else None
                )
        elif user["email_change"]:
            challenge = (body.code_challenge_method, body.code_challenge) if pkce else None
            await send_email_change(
                request, conn, user, user["email_change"], pkce=pkce, challenge=challenge
            )
    return _empty()


def body_as_otp(body: ResendBody) -> OtpBody:
    return OtpBody(
        code_challenge=body.code_challenge, code_challenge_method=body.code_challenge_method
    )


# --- email change (PUT /user when confirmations are on) ------------------------------------------
async def send_email_change(
    request: Request,
    conn: AsyncConnection[Any],
    user: store.Row,
    new_email: str,
    *,
    pkce: bool,
    challenge: tuple[str, str] | None = None,
) -> store.Row:
    """Mail the new address (and the current one with `double_confirm_changes`).

    `challenge` (method, code challenge) starts the PKCE flow the links will end in."""
    config = config_of(request)
    if challenge is not None:
        await mailer.start_flow(
            conn,
            user["id"],
            method=challenge[0],
            challenge=challenge[1],
            authentication_method=otp.AUTH_METHODS["email_change"],
        )
    updated = await store.update_user(
        conn, user["id"], {"email_change": new_email, "email_change_confirm_status": 0}
    )
    assert updated is not None
    updated = await mailer.send(
        request, conn, updated, mailer.EMAIL_CHANGE_NEW, to=new_email, pkce=pkce
    )
    if config.email.double_confirm_changes and user["email"]:
        updated = await mailer.send(
            request, conn, updated, mailer.EMAIL_CHANGE_CURRENT, pkce=pkce, check_frequency=False
        )
    return updated


# --- /reauthenticate -----------------------------------------------------------------------------
async def reauthenticate_endpoint(request: Request) -> Response:
    ctx = ctx_of(request)
    async with store.transaction(ctx) as conn:
        caller = await authenticate(request, ctx.keys, conn)
        user = caller.user
        if not user["email"] and not user["phone"]:
            raise bad_request(
                "validation_failed",
                "Reauthentication requires the user to have an email or a phone number",
            )
        if user["email"] and user["email_confirmed_at"] is None:
            raise unprocessable("email_not_confirmed", "Please verify your email first.")
        await mailer.send(request, conn, user, mailer.REAUTHENTICATION)
    return _empty()


async def verify_nonce(
    request: Request, conn: AsyncConnection[Any], user: store.Row, nonce: str
) -> None:
    """GoTrue's verifyReauthentication: the code from the reauthentication mail, once."""
    if not nonce:
        raise unprocessable("reauthentication_not_valid", INVALID_NONCE)
    expected = user["reauthentication_token"]
    if not otp.otp_matches(otp.token_hash(user["email"] or "", nonce), expected):
        raise unprocessable("reauthentication_not_valid", INVALID_NONCE)
    if otp.expired(user["reauthentication_sent_at"], config_of(request).email.otp_expiry):
        raise forbidden("otp_expired", "Token has expired or is invalid")
    await store.update_user(conn, user["id"], {"reauthentication_token": ""})


# --- /invite (admin) -----------------------------------------------------------------------------
async def invite_endpoint(request: Request) -> Response:
    ctx = ctx_of(request)
    require_admin(request, ctx.keys)
    body = await parse_body(request, InviteBody)
    email = validate_email(body.email)
    async with store.transaction(ctx) as conn:
        user = await store.find_user_by_email(conn, email)
        if user is not None and user["email_confirmed_at"] is not None:
            raise unprocessable("email_exists", EMAIL_EXISTS)
        if user is None:
            user = await new_email_user(conn, email, confirmed=False, data=body.data, invited=True)
        user = await mailer.send(request, conn, user, mailer.INVITE)
        identities = (await store.identities_of(conn, [user["id"]]))[user["id"]]
    return json_response(user_json(user, identities))
