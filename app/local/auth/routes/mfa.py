"""MFA: `/factors` enrol, challenge, verify, unenrol (GoTrue's mfa.go) and the admin factor routes.

TOTP is complete: the secret, `otpauth://` URI and QR code (`totp`), a challenge bound to the
caller's address that expires after 300 s, and a verification that verifies the factor, adds the
`totp` claim to the session, raises it to aal2, swaps its refresh token and ends the user's
other aal1 sessions. WebAuthn factors enrol here and go through the same challenge and
verification, with a WebAuthn ceremony (`mfa_webauthn`: `create` registers the key on an
unverified factor, `request` signs with it); phone factors stay off, as the stack has no
SMS provider. Every switch is `[auth.mfa.*]` of `supabase/config.toml`; with the CLI's defaults
every answer is GoTrue's "disabled" one.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any
from urllib.parse import urlsplit

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.local.auth import factors, mfa_webauthn, sessions, store, totp
from app.local.auth.config import AuthConfig, FactorSwitches
from app.local.auth.errors import (
    AuthApiError,
    bad_request,
    forbidden,
    json_response,
    not_found,
    unprocessable,
)
from app.local.auth.guard import SignedInUser, authenticate, require_admin
from app.local.auth.issue import client_info, config_of, ctx_of, session_body
from app.local.auth.params import AdminFactorBody, FactorBody, VerifyFactorBody, parse_body

_LABELS = {factors.TOTP: "TOTP", factors.PHONE: "Phone", factors.WEBAUTHN: "WebAuthn"}
_BAD_TYPE = "factor_type needs to be totp, phone, or webauthn"


def mfa_routes() -> list[Route]:
    return [
        Route("/factors", enroll, methods=["POST"]),
        Route("/factors/{factor_id}", unenroll, methods=["DELETE"]),
        Route("/factors/{factor_id}/challenge", challenge, methods=["POST"]),
        Route("/factors/{factor_id}/verify", verify, methods=["POST"]),
        Route("/admin/users/{user_id}/factors", admin_list_factors, methods=["GET"]),
        Route(
            "/admin/users/{user_id}/factors/{factor_id}",
            admin_factor,
            methods=["PUT", "DELETE"],
        ),
    ]


def _switches(config: AuthConfig, factor_type: str) -> FactorSwitches:
    mfa = config.mfa
    return {factors.TOTP: mfa.totp, factors.PHONE: mfa.phone}.get(factor_type, mfa.web_authn)


def _enroll_disabled(factor_type: str) -> AuthApiError:
    label = _LABELS[factor_type]
    return unprocessable(
        f"mfa_{factor_type}_enroll_not_enabled", f"MFA enroll is disabled for {label}"
    )


def _verify_disabled(factor_type: str) -> AuthApiError:
    label = _LABELS[factor_type]
    return unprocessable(
        f"mfa_{factor_type}_verify_not_enabled", f"MFA verification is disabled for {label}"
    )


async def _caller(request: Request, conn: AsyncConnection[Any]) -> SignedInUser:
    """requireAuthentication, then requireNotAnonymous (the `/factors` group)."""
    caller = await authenticate(request, ctx_of(request).keys, conn)
    if caller.user["is_anonymous"]:
        raise forbidden("no_authorization", "Anonymous user not allowed to perform these actions")
    return caller


def _factor_id(request: Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.path_params["factor_id"])
    except ValueError as exc:
        raise not_found("validation_failed", "factor_id must be an UUID") from exc


async def _owned_factor(
    request: Request, conn: AsyncConnection[Any], user_id: uuid.UUID
) -> store.Row:
    """GoTrue's loadFactor: the factor of the path, if it is this user's."""
    factor = await factors.find_owned_factor(conn, user_id, _factor_id(request))
    if factor is None:
        raise not_found("mfa_factor_not_found", "Factor not found")
    return factor


def _ip(request: Request) -> str:
    """The address a challenge is bound to (GoTrue's GetIPAddress: the peer, locally)."""
    return client_info(request)["ip"] or "0.0.0.0"


def _session_of(caller: SignedInUser, action: str) -> uuid.UUID:
    if caller.session_id is None:
        raise AuthApiError(500, "unexpected_failure", f"A valid session is required to {action}")
    return caller.session_id


# --- enrol ----------------------------------------------------------------------------------------
async def enroll(request: Request) -> Response:
    """POST /factors."""
    config = config_of(request)
    async with store.read(ctx_of(request)) as conn:
        caller = await _caller(request, conn)
    session_id = _session_of(caller, "enroll a factor")
    body = await parse_body(request, FactorBody)
    if body.factor_type not in _LABELS:
        raise bad_request("validation_failed", _BAD_TYPE)
    if not _switches(config, body.factor_type).enroll_enabled:
        raise _enroll_disabled(body.factor_type)
    if body.factor_type == factors.PHONE:  # no SMS provider locally: a phone factor is useless
        raise _enroll_disabled(factors.PHONE)
    async with store.transaction(ctx_of(request)) as conn:
        await _check_room_for(conn, caller, session_id, body.friendly_name, config)
        if body.factor_type == factors.WEBAUTHN:
            row = await factors.insert_factor(
                conn,
                caller.user["id"],
                factor_type=factors.WEBAUTHN,
                friendly_name=body.friendly_name,
            )
            return json_response(_enrolled(row))
        made = totp.new_enrolment(
            issuer=body.issuer or _site_host(config), account=caller.user["email"] or ""
        )
        row = await factors.insert_factor(
            conn,
            caller.user["id"],
            factor_type=factors.TOTP,
            friendly_name=body.friendly_name,
            secret=made.secret,
        )
    out = _enrolled(row)
    out["totp"] = {"qr_code": made.qr_code, "secret": made.secret, "uri": made.uri}
    return json_response(out)


def _enrolled(row: store.Row) -> dict[str, Any]:
    return {"id": str(row["id"]), "type": row["factor_type"], "friendly_name": row["friendly_name"]}


def _site_host(config: AuthConfig) -> str:
    """The issuer GoTrue names when the client gives none: the host (and port) of `site_url`."""
    host = urlsplit(config.site_url).netloc
    if not host:
        raise AuthApiError(500, "unexpected_failure", "site url is improperly formatted")
    return host


async def _check_room_for(
    conn: AsyncConnection[Any],
    caller: SignedInUser,
    session_id: uuid.UUID,
    friendly_name: str,
    config: AuthConfig,
) -> None:
    """GoTrue's validateFactors, with the user's row locked so two enrolments queue."""
    user_id = caller.user["id"]
    await store.fetch_one(conn, "select id from auth.users where id = %s for update", (user_id,))
    await factors.delete_expired_factors(conn, expiry_seconds=config.mfa.factor_expiry_seconds)
    existing = (await factors.factors_of(conn, [user_id]))[user_id]
    if any((f["friendly_name"] or "") == friendly_name for f in existing):
        raise unprocessable(
            "mfa_factor_name_conflict",
            f'A factor with the friendly name "{friendly_name}" for this user already exists',
        )
    verified = sum(1 for f in existing if f["status"] == "verified")
    if len(existing) >= config.mfa.max_enrolled_factors or (
        verified >= config.mfa.max_verified_factors
    ):
        raise unprocessable(
            "too_many_enrolled_mfa_factors",
            "Maximum number of verified factors reached, unenroll to continue",
        )
    if verified and await factors.session_aal(conn, session_id) != factors.AAL2:
        raise forbidden("insufficient_aal", "AAL2 required to enroll a new factor")


# --- challenge ------------------------------------------------------------------------------------
async def challenge(request: Request) -> Response:
    """POST /factors/{id}/challenge."""
    config = config_of(request)
    async with store.transaction(ctx_of(request)) as conn:
        caller = await _caller(request, conn)
        factor = await _owned_factor(request, conn, caller.user["id"])
        kind = factor["factor_type"]
        if not _switches(config, kind).verify_enabled or kind == factors.PHONE:
            raise _verify_disabled(kind)
        ceremony = None
        if kind == factors.WEBAUTHN:
            owned = (await factors.factors_of(conn, [caller.user["id"]]))[caller.user["id"]]
            ceremony = mfa_webauthn.challenge_for(config.webauthn, caller.user, factor, owned)
        made = await factors.create_challenge(
            conn,
            factor["id"],
            ip=_ip(request),
            web_authn_session_data=Jsonb(ceremony.session_data) if ceremony else None,
        )
    expires = made["created_at"] + dt.timedelta(seconds=config.mfa.challenge_expiry_seconds)
    out: dict[str, Any] = {
        "id": str(made["id"]),
        "type": kind,
        "expires_at": int(expires.timestamp()),
    }
    if ceremony is not None:
        out["webauthn"] = {"type": ceremony.kind, "credential_options": ceremony.credential_options}
    return json_response(out)


# --- verify ---------------------------------------------------------------------------------------
async def verify(request: Request) -> Response:
    """POST /factors/{id}/verify: a right code makes the session aal2 and answers its tokens."""
    ctx = ctx_of(request)
    config = config_of(request)
    async with store.read(ctx) as conn:
        caller = await _caller(request, conn)
        factor = await _owned_factor(request, conn, caller.user["id"])
    body = await parse_body(request, VerifyFactorBody)
    kind = factor["factor_type"]
    if not body.code and kind != factors.WEBAUTHN:
        raise bad_request("validation_failed", "Code needs to be non-empty")
    if not _switches(config, kind).verify_enabled or kind == factors.PHONE:
        raise _verify_disabled(kind)
    ceremony = mfa_webauthn.check_params(body.webauthn) if kind == factors.WEBAUTHN else None
    session_id = _session_of(caller, "verify a factor")
    refusal: AuthApiError | None = None
    answer: dict[str, Any] = {}
    async with store.transaction(ctx) as conn:
        refusal = await _challenge_refusal(request, conn, factor, body.challenge_id, config)
        if refusal is None and ceremony is not None:
            refusal = await _webauthn_refusal(conn, config, factor, body.challenge_id, ceremony)
        elif refusal is None and not totp.code_is_valid(factor["secret"] or "", body.code):
            refusal = unprocessable("mfa_verification_failed", "Invalid TOTP code entered")
        if refusal is None:
            answer = await _step_up(request, conn, caller, session_id, factor, body.challenge_id)
    if refusal is not None:  # raised after the commit: an expired challenge stays deleted
        raise refusal
    return json_response(answer)


async def _webauthn_refusal(
    conn: AsyncConnection[Any],
    config: AuthConfig,
    factor: store.Row,
    challenge_id: uuid.UUID,
    ceremony: tuple[str, dict[str, Any]],
) -> AuthApiError | None:
    """The key's proof for a WebAuthn factor (`mfa_webauthn`); a new key is kept on the factor."""
    found = await factors.find_challenge(conn, factor["id"], challenge_id)
    owned = (await factors.factors_of(conn, [factor["user_id"]]))[factor["user_id"]]
    kind, response = ceremony
    try:
        credential = mfa_webauthn.verify_response(
            config.webauthn,
            (found or {}).get("web_authn_session_data") or {},
            kind,
            response,
            owned,
        )
    except AuthApiError as refused:
        return refused
    if factor["status"] != "verified":
        await factors.keep_webauthn_credential(conn, factor["id"], credential)
    return None


async def _challenge_refusal(
    request: Request,
    conn: AsyncConnection[Any],
    factor: store.Row,
    challenge_id: uuid.UUID,
    config: AuthConfig,
) -> AuthApiError | None:
    """GoTrue's validateChallenge: the challenge exists, is unused, from this address, fresh."""
    found = await factors.find_challenge(conn, factor["id"], challenge_id)
    if found is None:
        return unprocessable(
            "mfa_factor_not_found", "MFA factor with the provided challenge ID not found"
        )
    if found["verified_at"] is not None or found["ip"] != _ip(request):
        return unprocessable(
            "mfa_ip_address_mismatch", "Challenge and verify IP addresses mismatch."
        )
    age = dt.datetime.now(dt.UTC) - found["created_at"]
    if age > dt.timedelta(seconds=config.mfa.challenge_expiry_seconds):
        await factors.delete_challenge(conn, found["id"])
        return unprocessable(
            "mfa_challenge_expired",
            f"MFA challenge {found['id']} has expired, verify against another challenge or"
            " create a new challenge.",
        )
    return None


async def _step_up(
    request: Request,
    conn: AsyncConnection[Any],
    caller: SignedInUser,
    session_id: uuid.UUID,
    factor: store.Row,
    challenge_id: uuid.UUID,
) -> dict[str, Any]:
    """GoTrue's verify transaction and updateMFASessionAndClaims, in its order."""
    user_id = caller.user["id"]
    await factors.mark_challenge_verified(conn, challenge_id)
    if factor["status"] != "verified":
        await factors.verify_factor(conn, factor["id"])
    await factors.add_amr_claim(conn, session_id, factors.FACTOR_METHODS[factor["factor_type"]])
    refresh = await sessions.swap_refresh_token(conn, user_id, session_id)
    assurance = await factors.assurance_of(conn, session_id)
    await factors.upgrade_session(conn, session_id, aal=assurance.aal, factor_id=factor["id"])
    await factors.end_sessions_below_aal2(conn, user_id)
    await factors.delete_unverified_factors(conn, user_id, factor["factor_type"])
    user = await store.find_user(conn, user_id) or caller.user
    identities = (await store.identities_of(conn, [user_id]))[user_id]
    user_factors = (await factors.factors_of(conn, [user_id]))[user_id]
    return session_body(
        ctx_of(request),
        config_of(request),
        user,
        identities,
        session_id,
        refresh,
        assurance=assurance,
        factors=user_factors,
    )


# --- unenrol --------------------------------------------------------------------------------------
async def unenroll(request: Request) -> Response:
    """DELETE /factors/{id}: a verified factor only from an aal2 session."""
    async with store.transaction(ctx_of(request)) as conn:
        caller = await _caller(request, conn)
        factor = await _owned_factor(request, conn, caller.user["id"])
        session_id = _session_of(caller, "unenroll a factor")
        if factor["status"] == "verified":
            if await factors.session_aal(conn, session_id) != factors.AAL2:
                raise unprocessable("insufficient_aal", "AAL2 required to unenroll verified factor")
        await factors.delete_factor(conn, factor["id"])
        await factors.downgrade_sessions(conn, factor)
    return json_response({"id": str(factor["id"])})


# --- admin ----------------------------------------------------------------------------------------
async def _admin_user(request: Request, conn: AsyncConnection[Any]) -> store.Row:
    require_admin(request, ctx_of(request).keys)
    try:
        user_id = uuid.UUID(request.path_params["user_id"])
    except ValueError as exc:
        raise not_found("validation_failed", "user_id must be an UUID") from exc
    user = await store.find_user(conn, user_id)
    if user is None:
        raise not_found("user_not_found", "User not found")
    return user


async def admin_list_factors(request: Request) -> Response:
    """GET /admin/users/{id}/factors: every factor of the user, verified or not."""
    async with store.read(ctx_of(request)) as conn:
        user = await _admin_user(request, conn)
        rows = (await factors.factors_of(conn, [user["id"]]))[user["id"]]
    return json_response([factors.factor_json(r) for r in rows])


async def admin_factor(request: Request) -> Response:
    """PUT (friendly name) or DELETE /admin/users/{id}/factors/{factor_id}: the factor back."""
    async with store.transaction(ctx_of(request)) as conn:
        user = await _admin_user(request, conn)
        factor = await _owned_factor(request, conn, user["id"])
        if request.method == "DELETE":
            await factors.delete_factor(conn, factor["id"])
            return json_response(factors.factor_json(factor))
        body = await parse_body(request, AdminFactorBody)
        if body.friendly_name:
            factor = await factors.rename_factor(conn, factor["id"], body.friendly_name)
    return json_response(factors.factor_json(factor))
