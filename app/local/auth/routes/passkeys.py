"""Passkeys, as GoTrue 2.189 serves them under `/passkeys` (passkey_*.go) and the admin API.

Registration (signed in, not anonymous) and discoverable sign-in are two-step WebAuthn
ceremonies: `…/options` stores a challenge and answers `{challenge_id, options, expires_at}`,
`…/verify` consumes the challenge (once) and checks the browser's response (`webauthn_rp`).
A sign-in names its user by the credential's user handle (the user id as text, GoTrue's
WebAuthnID) and answers a session whose `amr` is `passkey`. `[auth.passkey] enabled = false`
(the default) answers 404 `passkey_disabled` on every route, before anything else.

Registering or deleting a passkey needs an aal2 session once the user has a verified MFA
factor (GoTrue's requirePasskeyManagementAAL). Not here: audit-log entries, the sign-in rate
limit and captcha of `…/authentication/options`, and the AAGUID name list (every new passkey
is named "Passkey", GoTrue's fallback).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from psycopg import AsyncConnection
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.local.auth import factors, passkey_store, store, webauthn_rp
from app.local.auth.config import AuthConfig
from app.local.auth.errors import (
    AuthApiError,
    bad_request,
    forbidden,
    json_response,
    not_found,
    unprocessable,
)
from app.local.auth.guard import SignedInUser, authenticate, require_admin
from app.local.auth.issue import config_of, ctx_of, start_session
from app.local.auth.params import PasskeyRenameBody, PasskeyVerifyBody, parse_body
from app.local.auth.users import rfc3339

REGISTRATION = "registration"
AUTHENTICATION = "authentication"
DEFAULT_NAME = "Passkey"  # GoTrue's PasskeyFriendlyName for an unknown AAGUID
_MAX_NAME = 120


def _enabled(request: Request) -> AuthConfig:
    config = config_of(request)
    if not config.passkey.enabled:
        raise not_found("passkey_disabled", "Passkeys are disabled")
    return config


def _verification_failed(reason: str = "Credential verification failed") -> AuthApiError:
    return bad_request("webauthn_verification_failed", reason)


def _passkey_not_found() -> AuthApiError:
    return not_found("validation_failed", "Passkey not found")


def passkey_json(row: store.Row) -> dict[str, Any]:
    out: dict[str, Any] = {"id": str(row["id"])}
    if row["friendly_name"]:
        out["friendly_name"] = row["friendly_name"]
    out["created_at"] = rfc3339(row["created_at"])
    if row["last_used_at"] is not None:
        out["last_used_at"] = rfc3339(row["last_used_at"])
    return out


def _ceremony_json(
    challenge_id: uuid.UUID, ceremony: webauthn_rp.Ceremony, expires: dt.datetime
) -> Response:
    return json_response(
        {
            "challenge_id": str(challenge_id),
            "options": ceremony.options,
            "expires_at": int(expires.timestamp()),
        }
    )


def _expiry(config: AuthConfig) -> dt.datetime:
    return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=config.webauthn.challenge_expiry_seconds)


async def _signed_in(request: Request, *, not_anonymous: bool) -> SignedInUser:
    ctx = ctx_of(request)
    async with store.read(ctx) as conn:
        caller = await authenticate(request, ctx.keys, conn)
    if not_anonymous and caller.user["is_anonymous"]:
        raise forbidden("no_authorization", "Anonymous user not allowed to perform these actions")
    return caller


async def _verify_body(request: Request) -> tuple[uuid.UUID, dict[str, Any]]:
    body = await parse_body(request, PasskeyVerifyBody)
    if not body.challenge_id:
        raise bad_request("validation_failed", "challenge_id is required")
    if body.credential is None:
        raise bad_request("validation_failed", "credential is required")
    try:
        return uuid.UUID(body.challenge_id), body.credential
    except ValueError as exc:
        raise bad_request("validation_failed", "challenge_id must be a valid UUID") from exc


async def _consume(
    conn: AsyncConnection[Any], challenge_id: uuid.UUID, kind: str, user_id: uuid.UUID | None
) -> str:
    """The consumed challenge's value; GoTrue's not-found and expired answers otherwise."""
    row = await passkey_store.consume_challenge(conn, challenge_id, kind, user_id)
    if row is None:
        raise bad_request("webauthn_challenge_not_found", "Challenge not found or already used")
    if row["expires_at"] <= dt.datetime.now(dt.UTC):
        raise bad_request("webauthn_challenge_expired", "Challenge has expired")
    return str(row["session_data"]["challenge"])


async def _require_management_aal(conn: AsyncConnection[Any], caller: SignedInUser) -> None:
    """GoTrue's requirePasskeyManagementAAL: with a verified MFA factor, only an aal2 session."""
    user_id = caller.user["id"]
    owned = (await factors.factors_of(conn, [user_id]))[user_id]
    if not any(f["status"] == "verified" for f in owned):
        return
    if (
        caller.session_id is None
        or await factors.session_aal(conn, caller.session_id) != factors.AAL2
    ):
        raise forbidden(
            "insufficient_aal", "AAL2 session is required to manage passkeys when MFA is enabled"
        )


# --- registration ---------------------------------------------------------------------------
async def registration_options(request: Request) -> Response:
    config = _enabled(request)
    caller = await _signed_in(request, not_anonymous=True)
    user = caller.user
    ctx = ctx_of(request)
    async with store.transaction(ctx) as conn:
        await _require_management_aal(conn, caller)
        existing = await passkey_store.credentials_of(conn, user["id"])
        if len(existing) >= config.passkey.max_passkeys_per_user:
            raise unprocessable("too_many_passkeys", "Maximum number of passkeys reached")
        name = str(user["email"] or user.get("phone") or "")
        meta_name = (user["raw_user_meta_data"] or {}).get("name")
        display = meta_name if isinstance(meta_name, str) and meta_name else name
        ceremony = webauthn_rp.registration_options(
            config.webauthn,
            user_handle=str(user["id"]).encode(),
            user_name=name,
            display_name=display,
            exclude=[bytes(row["credential_id"]) for row in existing],
        )
        expires = _expiry(config)
        challenge_id = await passkey_store.insert_challenge(
            conn,
            user_id=user["id"],
            kind=REGISTRATION,
            challenge=ceremony.challenge,
            expires_at=expires,
        )
    return _ceremony_json(challenge_id, ceremony, expires)


async def registration_verify(request: Request) -> Response:
    config = _enabled(request)
    caller = await _signed_in(request, not_anonymous=True)
    user_id: uuid.UUID = caller.user["id"]
    ctx = ctx_of(request)
    async with store.read(ctx) as conn:
        await _require_management_aal(conn, caller)
    challenge_id, credential = await _verify_body(request)
    async with store.transaction(ctx) as conn:
        challenge = await _consume(conn, challenge_id, REGISTRATION, user_id)
    try:
        new = webauthn_rp.verify_registration(config.webauthn, credential, challenge)
    except webauthn_rp.CeremonyFailed as exc:
        raise _verification_failed() from exc
    async with store.transaction(ctx) as conn:
        if (
            await passkey_store.count_credentials(conn, user_id)
            >= config.passkey.max_passkeys_per_user
        ):
            raise unprocessable("too_many_passkeys", "Maximum number of passkeys reached")
        if await passkey_store.find_by_credential_id(conn, new.credential_id) is not None:
            raise unprocessable(
                "webauthn_credential_exists", "This credential is already registered"
            )
        row = await passkey_store.insert_credential(conn, user_id, new, DEFAULT_NAME)
    body = passkey_json(row)
    body.pop("last_used_at", None)
    return json_response(body)


# --- authentication -------------------------------------------------------------------------
async def authentication_options(request: Request) -> Response:
    config = _enabled(request)
    ceremony = webauthn_rp.authentication_options(config.webauthn)
    expires = _expiry(config)
    async with store.transaction(ctx_of(request)) as conn:
        challenge_id = await passkey_store.insert_challenge(
            conn,
            user_id=None,
            kind=AUTHENTICATION,
            challenge=ceremony.challenge,
            expires_at=expires,
        )
    return _ceremony_json(challenge_id, ceremony, expires)


async def authentication_verify(request: Request) -> Response:
    config = _enabled(request)
    challenge_id, credential = await _verify_body(request)
    ctx = ctx_of(request)
    async with store.transaction(ctx) as conn:
        challenge = await _consume(conn, challenge_id, AUTHENTICATION, None)
    try:
        claimed = webauthn_rp.read_assertion(credential)
    except webauthn_rp.CeremonyFailed as exc:
        raise _verification_failed("Invalid credential response") from exc
    async with store.transaction(ctx) as conn:
        user, passkey = await _claimed_user(conn, claimed)
        try:
            sign_count = webauthn_rp.verify_assertion(
                config.webauthn,
                credential,
                challenge,
                public_key=bytes(passkey["public_key"]),
                sign_count=int(passkey["sign_count"]),
            )
        except webauthn_rp.CeremonyFailed as exc:
            raise _verification_failed() from exc
        if user["email"] and user["email_confirmed_at"] is None:
            raise forbidden("email_not_confirmed", "Email not confirmed")
        if store.is_banned(user):
            raise forbidden("user_banned", "User is banned")
        await passkey_store.record_use(conn, passkey["id"], sign_count)
        user = await store.record_sign_in(conn, user["id"]) or user
        body = await start_session(request, conn, user, amr_method="passkey")
    return json_response(body)


async def _claimed_user(
    conn: AsyncConnection[Any], claimed: webauthn_rp.Assertion
) -> tuple[store.Row, store.Row]:
    """The user the assertion's handle names and its passkey with the assertion's id."""
    try:
        user_id = uuid.UUID((claimed.user_handle or b"").decode())
    except (UnicodeDecodeError, ValueError) as exc:
        raise _verification_failed() from exc
    user = await store.find_user(conn, user_id)
    passkey = await passkey_store.find_by_credential_id(conn, claimed.credential_id)
    if user is None or passkey is None or passkey["user_id"] != user_id:
        raise _verification_failed()
    return user, passkey


# --- management -----------------------------------------------------------------------------
def _passkey_id(request: Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.path_params["passkey_id"])
    except ValueError as exc:
        raise _passkey_not_found() from exc


async def list_passkeys(request: Request) -> Response:
    _enabled(request)
    caller = await _signed_in(request, not_anonymous=False)
    async with store.read(ctx_of(request)) as conn:
        rows = await passkey_store.credentials_of(conn, caller.user["id"])
    return json_response([passkey_json(row) for row in rows])


async def passkey_item(request: Request) -> Response:
    """PATCH renames, DELETE removes one of the caller's own passkeys."""
    _enabled(request)
    caller = await _signed_in(request, not_anonymous=False)
    passkey_id = _passkey_id(request)
    if request.method == "PATCH":
        body = await parse_body(request, PasskeyRenameBody)
        if not body.friendly_name:
            raise bad_request("validation_failed", "friendly_name is required")
        if len(body.friendly_name) > _MAX_NAME:
            raise bad_request("validation_failed", "friendly_name must be 120 characters or less")
    async with store.transaction(ctx_of(request)) as conn:
        if request.method == "DELETE":
            await _require_management_aal(conn, caller)
        if await passkey_store.find_credential(conn, passkey_id, caller.user["id"]) is None:
            raise _passkey_not_found()
        if request.method == "PATCH":
            return json_response(
                passkey_json(await passkey_store.rename(conn, passkey_id, body.friendly_name))
            )
        await passkey_store.delete_credential(conn, passkey_id)
    return Response(status_code=204)


# --- admin ----------------------------------------------------------------------------------
async def _admin_target(request: Request) -> store.Row:
    require_admin(request, ctx_of(request).keys)
    try:
        user_id = uuid.UUID(request.path_params["user_id"])
    except ValueError as exc:
        raise not_found("validation_failed", "user_id must be an UUID") from exc
    async with store.read(ctx_of(request)) as conn:
        user = await store.find_user(conn, user_id)
    if user is None:
        raise not_found("user_not_found", "User not found")
    return user


async def admin_list(request: Request) -> Response:
    user = await _admin_target(request)
    async with store.read(ctx_of(request)) as conn:
        rows = await passkey_store.credentials_of(conn, user["id"])
    return json_response([passkey_json(row) for row in rows])


async def admin_delete(request: Request) -> Response:
    user = await _admin_target(request)
    passkey_id = _passkey_id(request)
    async with store.transaction(ctx_of(request)) as conn:
        if await passkey_store.find_credential(conn, passkey_id, user["id"]) is None:
            raise _passkey_not_found()
        await passkey_store.delete_credential(conn, passkey_id)
    return Response(status_code=204)


def passkey_routes() -> list[Route]:
    return [
        Route("/passkeys/authentication/options", authentication_options, methods=["POST"]),
        Route("/passkeys/authentication/verify", authentication_verify, methods=["POST"]),
        Route("/passkeys/registration/options", registration_options, methods=["POST"]),
        Route("/passkeys/registration/verify", registration_verify, methods=["POST"]),
        Route("/passkeys", list_passkeys, methods=["GET"]),
        Route("/passkeys/{passkey_id}", passkey_item, methods=["PATCH", "DELETE"]),
        Route("/admin/users/{user_id}/passkeys", admin_list, methods=["GET"]),
        Route("/admin/users/{user_id}/passkeys/{passkey_id}", admin_delete, methods=["DELETE"]),
    ]
