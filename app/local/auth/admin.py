"""The admin half of the Auth stand-in: `/admin/users` and `/admin/users/{id}`.

Only a verified JWT whose `role` is `service_role` (or `supabase_admin`) gets in; anything else
is 403 `not_admin` (GoTrue's requireAdminCredentials). Shapes follow
GoTrue's `admin.go`: create (200 user), list (`{"users", "aud"}` + `X-Total-Count` and `Link`),
get, update, delete (200 `{}`, hard or soft).
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from typing import Any
from urllib.parse import urlencode

import psycopg
from psycopg import AsyncConnection
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.local.auth import sessions, store
from app.local.auth.errors import (
    EMAIL_EXISTS,
    bad_request,
    json_response,
    not_found,
    unprocessable,
)
from app.local.auth.factors import factor_json, factors_of
from app.local.auth.guard import require_admin
from app.local.auth.params import (
    AdminDeleteBody,
    AdminUserBody,
    check_password_length,
    check_password_strength,
    parse_ban_duration,
    parse_body,
    validate_email,
)
from app.local.auth.passwords import hash_password
from app.local.auth.users import merge_metadata, user_json
from app.local.context import StackContext

DEFAULT_PER_PAGE = 50
_MAX_PAGE_VALUE = 2**31 - 1
_BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")


def admin_routes() -> list[Route]:
    return [
        Route("/admin/users", users_collection, methods=["GET", "POST"]),
        Route("/admin/users/{user_id}", user_item, methods=["GET", "PUT", "DELETE"]),
    ]


async def users_collection(request: Request) -> Response:
    ctx: StackContext = request.app.state.ctx
    require_admin(request, ctx.keys)
    if request.method == "POST":
        return await _create(request, ctx)
    return await _list(request, ctx)


async def user_item(request: Request) -> Response:
    ctx: StackContext = request.app.state.ctx
    require_admin(request, ctx.keys)
    try:
        user_id = uuid.UUID(request.path_params["user_id"])
    except ValueError as exc:
        raise not_found("validation_failed", "user_id must be an UUID") from exc
    async with store.read(ctx) as conn:
        user = await store.find_user(conn, user_id)
        if user is None:
            raise not_found("user_not_found", "User not found")
        if request.method == "GET":
            return await _user_response(conn, user)
    if request.method == "PUT":
        return await _update(request, ctx, user)
    return await _delete(request, ctx, user)


async def _user_response(conn: AsyncConnection[Any], user: store.Row) -> Response:
    identities = (await store.identities_of(conn, [user["id"]]))[user["id"]]
    factors = (await factors_of(conn, [user["id"]]))[user["id"]]
    return json_response(user_json(user, identities, [factor_json(f) for f in factors]))


# --- create ---------------------------------------------------------------------------------------
async def _create(request: Request, ctx: StackContext) -> Response:
    body = await parse_body(request, AdminUserBody)
    if not body.email and not body.phone:
        raise bad_request(
            "validation_failed", "Cannot create a user without either an email or phone"
        )
    if body.phone:
        raise unprocessable("phone_provider_disabled", "Phone users are not supported locally")
    email = validate_email(body.email)
    async with store.read(ctx) as conn:
        if await store.email_taken(conn, email):
            raise unprocessable("email_exists", EMAIL_EXISTS)
    if body.password is not None and body.password_hash:
        raise bad_request(
            "validation_failed", "Only a password or a password hash should be provided"
        )
    user_id = _custom_id(body.id) if body.id else uuid.uuid4()
    ban = parse_ban_duration(body.ban_duration) if body.ban_duration else None
    encrypted = await _encrypted_password(body)
    new = store.NewUser(
        id=user_id,
        email=email,
        encrypted_password=encrypted,
        confirmed=body.email_confirm,
        aud=body.aud or store.AUDIENCE,
        role=body.role or store.AUDIENCE,
        user_metadata=body.user_metadata or {},
        app_metadata=merge_metadata(store.EMAIL_APP_METADATA, body.app_metadata or {}),
        banned_until_sql=f"{ban.total_seconds()} seconds" if ban else None,
    )
    try:
        async with store.transaction(ctx) as conn:
            user = await store.insert_user(conn, new)
            return await _user_response(conn, user)
    except psycopg.errors.UniqueViolation as exc:
        if exc.diag.constraint_name == "users_pkey":
            raise unprocessable(
                "user_already_exists", "A user with this ID already exists"
            ) from exc
        raise unprocessable("email_exists", EMAIL_EXISTS) from exc


def _custom_id(text: str) -> uuid.UUID:
    try:
        value = uuid.UUID(text)
    except ValueError as exc:
        raise bad_request("validation_failed", "ID must conform to the uuid v4 format") from exc
    if value.int == 0:
        raise bad_request("validation_failed", "ID cannot be a nil uuid")
    return value


async def _encrypted_password(body: AdminUserBody) -> str:
    """A bcrypt hash of `password`, the given `password_hash`, or "" (no password sign-in)."""
    if body.password_hash:
        if not body.password_hash.startswith(_BCRYPT_PREFIXES):
            raise bad_request("validation_failed", "Invalid password hash format")
        return body.password_hash
    if body.password:
        check_password_length(body.password)
        return await hash_password(body.password)
    return ""


# --- list ---------------------------------------------------------------------------------------
async def _list(request: Request, ctx: StackContext) -> Response:
    page = _page_param(request, "page", 1)
    per_page = _page_param(request, "per_page", DEFAULT_PER_PAGE)
    text = request.query_params.get("filter", "")
    async with store.read(ctx) as conn:
        rows, total = await store.list_users(conn, page=max(page, 1), per_page=per_page, text=text)
        identities = await store.identities_of(conn, [r["id"] for r in rows])
        factors = await factors_of(conn, [r["id"] for r in rows])
    users = [
        user_json(r, identities[r["id"]], [factor_json(f) for f in factors[r["id"]]]) for r in rows
    ]
    return json_response(
        {"users": users, "aud": store.AUDIENCE},
        headers={"X-Total-Count": str(total), "Link": _links(request, page, per_page, total)},
    )


def _page_param(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name, "")
    if raw == "":
        return default
    if not raw.isdigit():
        raise bad_request(
            "validation_failed",
            f'Bad Pagination Parameters: strconv.ParseUint: parsing "{raw}": invalid syntax',
        )
    return min(int(raw), _MAX_PAGE_VALUE)


def _links(request: Request, page: int, per_page: int, total: int) -> str:
    """GoTrue's pagination `Link`: `next` while pages remain, then `last`; keys sorted."""
    last = math.ceil(total / per_page) if per_page else 0
    query = dict(request.query_params)

    def url(target: int) -> str:
        return "/admin/users?" + urlencode(sorted((query | {"page": str(target)}).items()))

    link = f'<{url(page + 1)}>; rel="next", ' if page < last else ""
    return link + f'<{url(last)}>; rel="last"'


# --- update and delete ----------------------------------------------------------------------------
async def _update(request: Request, ctx: StackContext, user: store.Row) -> Response:
    body = await parse_body(request, AdminUserBody)
    changes: dict[str, Any] = {}
    email = validate_email(body.email) if body.email else ""
    if body.phone:
        raise unprocessable("phone_provider_disabled", "Phone users are not supported locally")
    if body.ban_duration:
        ban = parse_ban_duration(body.ban_duration)
        changes["banned_until"] = dt.datetime.now(dt.UTC) + ban if ban else None
    if body.password is not None:
        check_password_strength(body.password)
        changes["encrypted_password"] = await hash_password(body.password)
    if body.role:
        changes["role"] = body.role
    if body.email_confirm:
        changes["email_confirmed_at"] = store.NOW
    if body.app_metadata is not None:
        changes["raw_app_meta_data"] = merge_metadata(user["raw_app_meta_data"], body.app_metadata)
    if body.user_metadata is not None:
        changes["raw_user_meta_data"] = merge_metadata(
            user["raw_user_meta_data"], body.user_metadata
        )
    async with store.transaction(ctx) as conn:
        if email and email != user["email"]:
            if await store.email_taken(conn, email, except_id=user["id"]):
                raise unprocessable("email_exists", EMAIL_EXISTS)
            changes["email"] = email
            await store.set_email_identity(conn, user["id"], email)
        updated = await store.update_user(conn, user["id"], changes) if changes else user
        if updated is None:
            raise not_found("user_not_found", "User not found")
        if "encrypted_password" in changes:
            await sessions.end_sessions(
                conn, user["id"]
            )  # GoTrue: a new password ends every session
        return await _user_response(conn, updated)


async def _delete(request: Request, ctx: StackContext, user: store.Row) -> Response:
    body = await parse_body(request, AdminDeleteBody, empty_ok=True)
    async with store.transaction(ctx) as conn:
        if not body.should_soft_delete:
            await store.delete_user(conn, user["id"])
        elif user["deleted_at"] is None:
            await store.soft_delete_user(conn, user)
            await sessions.end_sessions(conn, user["id"])
    return json_response({})
