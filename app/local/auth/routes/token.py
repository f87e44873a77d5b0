"""`POST /token?grant_type=…`: the password and refresh-token grants here (the refresh reuse
interval included); PKCE in `verify`, id_token and web3 answered as disabled (`disabled`)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from app.local.auth import sessions, store
from app.local.auth.config import AuthConfig
from app.local.auth.disabled import id_token_grant, web3_grant
from app.local.auth.errors import OAuthError, bad_request, unprocessable
from app.local.auth.factors import Assurance, assurance_of, factors_of
from app.local.auth.issue import client_info, config_of, limiter_of, session_response
from app.local.auth.oauth_grants import refuse_client_session
from app.local.auth.params import PasswordGrantBody, RefreshGrantBody, parse_body
from app.local.auth.passwords import password_matches, spend_dummy_compare
from app.local.auth.ratelimit import Bucket
from app.local.auth.verify import pkce_grant
from app.local.context import StackContext

INVALID_LOGIN = "Invalid login credentials"


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
        user_factors = (await factors_of(conn, [user["id"]]))[user["id"]]
    return session_response(
        ctx, user, identities, session_id, refresh, config=config_of(request), factors=user_factors
    )


async def _refresh_grant(request: Request) -> Response:
    ctx: StackContext = request.app.state.ctx
    body = await parse_body(request, RefreshGrantBody)
    if not body.refresh_token:
        raise OAuthError("invalid_request", "refresh_token required")
    async with store.transaction(ctx) as conn:
        if config_of(request).oauth_server.enabled:
            await refuse_client_session(conn, body.refresh_token)
        result = await sessions.rotate_refresh_token(
            conn,
            body.refresh_token,
            reuse_interval=reuse_interval(config_of(request)),
            **client_info(request),
        )
        identities: list[store.Row] = []
        user_factors: list[store.Row] = []
        assurance: Assurance | None = None
        if result.outcome is sessions.RefreshOutcome.ROTATED and result.user is not None:
            user_id = result.user["id"]
            identities = (await store.identities_of(conn, [user_id]))[user_id]
            user_factors = (await factors_of(conn, [user_id]))[user_id]
            if result.session_id is not None:  # the session keeps what it proved (aal, amr)
                assurance = await assurance_of(conn, result.session_id)
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
    return session_response(
        ctx,
        result.user,
        identities,
        result.session_id,
        result.token,
        config=config_of(request),
        assurance=assurance,
        factors=user_factors,
    )


def reuse_interval(config: AuthConfig) -> int:
    """Without rotation GoTrue never revokes for reuse: an unbounded window, in effect."""
    if not config.enable_refresh_token_rotation:
        return 10 * 365 * 24 * 3600
    return config.refresh_token_reuse_interval


_GRANTS = {
    "password": _password_grant,
    "refresh_token": _refresh_grant,
    "pkce": pkce_grant,
    "id_token": id_token_grant,
    "web3": web3_grant,
}
