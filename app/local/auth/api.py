"""Supabase Auth (GoTrue) stand-in, mounted at `/auth/v1` behind the apikey gateway.

Routes, bodies, statuses and error shapes follow GoTrue's (supabase/auth) handlers and what
supabase-py's auth client sends and expects: signup (autoconfirm, or a confirmation mail with
`enable_confirmations`; anonymous when no credentials), the password, refresh-token (with the reuse
interval), PKCE, id_token and web3 grants, `/user`, `/logout`, JWKS, `/settings`, `/health`, the
admin API (`admin`), the email flows (`flows`, `verify`, `links`) and GoTrue's default-config
"disabled" answers (`disabled`). Settings come from `supabase/config.toml` (`config`); per-IP rate
limits (`ratelimit`) and a body cap on every route (`bodycap`) guard it. Users, identities,
sessions, refresh tokens and PKCE flow state live in the `auth` tables (`store`); mails go to the
local sink (`mail`). Passwords are bcrypt hashes computed off the event loop. Every request that
writes runs in one transaction.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import psycopg
from psycopg import AsyncConnection
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.local.auth import flows, otp, sessions, store
from app.local.auth.admin import admin_routes
from app.local.auth.bodycap import BodyCap
from app.local.auth.config import CONFIG_KEY, AuthConfig, load_auth_config
from app.local.auth.disabled import disabled_routes, id_token_grant, web3_grant
from app.local.auth.errors import (
    AuthApiError,
    OAuthError,
    bad_request,
    json_response,
    render_error,
    unprocessable,
)
from app.local.auth.guard import authenticate, check_audience
from app.local.auth.issue import client_info, config_of, limiter_of, session_body
from app.local.auth.links import generate_link
from app.local.auth.params import (
    OtpBody,
    PasswordGrantBody,
    RefreshGrantBody,
    SignupBody,
    UserUpdateBody,
    check_password_strength,
    decode_body,
    parse_body,
    read_body,
    validate_email,
)
from app.local.auth.passwords import hash_password, password_matches, spend_dummy_compare
from app.local.auth.ratelimit import Bucket, RateLimiter
from app.local.auth.users import merge_metadata, user_json
from app.local.auth.verify import pkce_grant, verify_endpoint
from app.local.context import StackContext

logger = logging.getLogger(__name__)

GOTRUE_VERSION = "v2.189.0"  # the version the Supabase CLI bundles (wire reference, header)
INVALID_LOGIN = "Invalid login credentials"
EMAIL_EXISTS = "A user with this email address has already been registered"


# --- shared helpers ------------------------------------------------------------------------------
def _session_response(
    ctx: StackContext,
    user: store.Row,
    identities: list[store.Row],
    session_id: uuid.UUID,
    refresh_token: str,
    *,
    config: AuthConfig,
    amr_method: str = "password",
) -> Response:
    return json_response(
        session_body(
            ctx, config, user, identities, session_id, refresh_token, amr_method=amr_method
        )
    )


async def _user_response(conn: AsyncConnection[Any], user: store.Row) -> Response:
    identities = (await store.identities_of(conn, [user["id"]]))[user["id"]]
    return json_response(user_json(user, identities))


# --- handlers ----------------------------------------------------------------------------------
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
    return _session_response(ctx, user, identities, session_id, refresh, config=config_of(request))


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
        return await _user_response(conn, user)


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
        session_id, refresh = await sessions.start_session(conn, user["id"], **client_info(request))
    return _session_response(
        ctx, user, [], session_id, refresh, config=config, amr_method="anonymous"
    )


def _already_registered() -> AuthApiError:
    return unprocessable("user_already_exists", "User already registered")


async def token(request: Request) -> Response:
    grant = request.query_params.get("grant_type", "")
    handler = _GRANTS.get(grant)
    if handler is None:
        raise bad_request("invalid_credentials", "unsupported_grant_type")
    limiter_of(request).check(request, Bucket.TOKEN)
    return await handler(request)


async def _password_grant(request: Request) -> Response:
    ctx: StackContext = request.app.state.ctx
    body = await parse_body(request, PasswordGrantBody)
    if body.email and body.phone:
        raise bad_request(
            "validation_failed",
            "Only an email address or phone number should be provided on login.",
        )
    if body.phone:
        raise unprocessable("phone_provider_disabled", "Phone logins are disabled")
    if not body.email:
        raise bad_request("validation_failed", "missing email or phone")
    async with store.read(ctx) as conn:
        user = await store.find_user_by_email(conn, body.email.strip())
    if user is None or not user["encrypted_password"]:
        # As long as a real compare, so the answer's timing does not tell the email exists.
        await spend_dummy_compare(body.password)
        raise bad_request("invalid_credentials", INVALID_LOGIN)
    if store.is_banned(user):
        raise bad_request("user_banned", "User is banned")
    if not await password_matches(body.password, user["encrypted_password"]):
        raise bad_request("invalid_credentials", INVALID_LOGIN)
    if user["email_confirmed_at"] is None:
        raise bad_request("email_not_confirmed", "Email not confirmed")
    async with store.transaction(ctx) as conn:
        user = await store.record_sign_in(conn, user["id"]) or user
        session_id, refresh = await sessions.start_session(conn, user["id"], **client_info(request))
        identities = (await store.identities_of(conn, [user["id"]]))[user["id"]]
    return _session_response(ctx, user, identities, session_id, refresh, config=config_of(request))


async def _refresh_grant(request: Request) -> Response:
    ctx: StackContext = request.app.state.ctx
    body = await parse_body(request, RefreshGrantBody)
    if not body.refresh_token:
        raise OAuthError("invalid_request", "refresh_token required")
    async with store.transaction(ctx) as conn:
        result = await sessions.rotate_refresh_token(
            conn,
            body.refresh_token,
            reuse_interval=_reuse_interval(config_of(request)),
            **client_info(request),
        )
        identities: list[store.Row] = []
        if result.outcome is sessions.RefreshOutcome.ROTATED and result.user is not None:
            identities = (await store.identities_of(conn, [result.user["id"]]))[result.user["id"]]
    # The transaction has committed: a reuse has revoked the token family for good.
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
    return _session_response(
        ctx, result.user, identities, result.session_id, result.token, config=config_of(request)
    )


def _reuse_interval(config: AuthConfig) -> int:
    """Without rotation GoTrue never revokes for reuse: an unbounded window, in effect."""
    if not config.enable_refresh_token_rotation:
        return 10 * 365 * 24 * 3600
    return config.refresh_token_reuse_interval


async def user_endpoint(request: Request) -> Response:
    ctx: StackContext = request.app.state.ctx
    if request.method == "PUT":
        return await _update_user(request)
    async with store.read(ctx) as conn:
        caller = await authenticate(request, ctx.keys, conn)
    check_audience(request, caller.claims)
    return json_response(user_json(caller.user, caller.identities))


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
        return await _user_response(conn, updated)


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


async def jwks(request: Request) -> Response:
    ctx: StackContext = request.app.state.ctx
    return json_response(ctx.keys.jwks(), headers={"Cache-Control": "public, max-age=600"})


async def settings(request: Request) -> Response:
    """GoTrue's /settings, from the same config the handlers obey."""
    config = config_of(request)
    external = dict.fromkeys(
        (
            "anonymous_users",
            "apple",
            "azure",
            "bitbucket",
            "discord",
            "facebook",
            "figma",
            "fly",
            "github",
            "gitlab",
            "google",
            "keycloak",
            "kakao",
            "linkedin_oidc",
            "notion",
            "phone",
            "slack_oidc",
            "spotify",
            "twitch",
            "twitter",
            "workos",
            "zoom",
        ),
        False,
    ) | {"email": config.email.enable_signup, "anonymous_users": config.enable_anonymous_sign_ins}
    return json_response(
        {
            "external": external,
            "disable_signup": not config.enable_signup,
            "mailer_autoconfirm": not config.email.enable_confirmations,
            "phone_autoconfirm": False,
            "sms_provider": "twilio",
            "saml_enabled": False,
        }
    )


async def health(_: Request) -> Response:
    return json_response(
        {
            "version": GOTRUE_VERSION,
            "name": "GoTrue",
            "description": "GoTrue is a user registration and authentication API",
        }
    )


_GRANTS = {
    "password": _password_grant,
    "refresh_token": _refresh_grant,
    "pkce": pkce_grant,
    "id_token": id_token_grant,
    "web3": web3_grant,
}


# --- error edges -------------------------------------------------------------------------------
async def _on_auth_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AuthApiError | OAuthError)
    return render_error(request, exc)


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = "not_found" if exc.status_code == 404 else "method_not_allowed"
    return render_error(request, AuthApiError(exc.status_code, code, str(exc.detail)))


async def _on_bad_data(request: Request, exc: Exception) -> Response:
    """Values PostgreSQL refuses (a NUL inside metadata text): the client's fault, so 400."""
    assert isinstance(exc, psycopg.DataError)
    detail = exc.diag.message_primary or "invalid input"
    return render_error(request, bad_request("validation_failed", f"Invalid input: {detail}"))


async def _on_unique_violation(request: Request, exc: Exception) -> Response:
    """An email taken between our check and our write (a race): what the check would say."""
    assert isinstance(exc, psycopg.errors.UniqueViolation)
    if exc.diag.constraint_name == "users_email_partial_key":
        return render_error(request, unprocessable("email_exists", EMAIL_EXISTS))
    return await _on_database_error(request, exc)


async def _on_database_error(request: Request, exc: Exception) -> Response:
    logger.error("auth stand-in database error on %s", request.url.path, exc_info=exc)
    return render_error(
        request, AuthApiError(500, "unexpected_failure", "Database error, please try again")
    )


def create_app(ctx: StackContext) -> Starlette:
    config: AuthConfig = ctx.extra.get(CONFIG_KEY) or load_auth_config()
    app = Starlette(
        middleware=[Middleware(BodyCap)],
        routes=[
            Route("/signup", signup, methods=["POST"]),
            Route("/token", token, methods=["POST"]),
            Route("/user", user_endpoint, methods=["GET", "PUT"]),
            Route("/logout", logout, methods=["POST"]),
            Route("/.well-known/jwks.json", jwks, methods=["GET"]),
            Route("/settings", settings, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
            Route("/otp", flows.otp_endpoint, methods=["POST"]),
            Route("/magiclink", flows.magiclink_endpoint, methods=["POST"]),
            Route("/verify", verify_endpoint, methods=["GET", "POST"]),
            Route("/recover", flows.recover_endpoint, methods=["POST"]),
            Route("/resend", flows.resend_endpoint, methods=["POST"]),
            Route("/reauthenticate", flows.reauthenticate_endpoint, methods=["GET"]),
            Route("/invite", flows.invite_endpoint, methods=["POST"]),
            Route("/admin/generate_link", generate_link, methods=["POST"]),
            *disabled_routes(),
            *admin_routes(),
        ],
        exception_handlers={
            AuthApiError: _on_auth_error,
            OAuthError: _on_auth_error,
            HTTPException: _on_http_error,
            psycopg.DataError: _on_bad_data,
            psycopg.errors.UniqueViolation: _on_unique_violation,
            psycopg.Error: _on_database_error,
        },
    )
    app.state.ctx = ctx
    app.state.config = config
    app.state.limiter = RateLimiter(config.rate_limit)
    return app
