"""`POST /admin/generate_link`: GoTrue's adminGenerateLink (mail.go) for every type.

The link and code are made exactly as a mail would carry them, but nothing is sent: the answer
is the user object with `action_link`, `email_otp`, `hashed_token`, `verification_type` and
`redirect_to` (supabase-py's `GenerateLinkResponse`).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from app.local.auth import otp, store
from app.local.auth.errors import EMAIL_EXISTS, bad_request, json_response, not_found, unprocessable
from app.local.auth.flows import new_email_user
from app.local.auth.guard import require_admin
from app.local.auth.issue import config_of, ctx_of
from app.local.auth.params import (
    GenerateLinkBody,
    check_password_strength,
    parse_body,
    validate_email,
)
from app.local.auth.passwords import hash_password
from app.local.auth.users import user_json

_TYPES = ("signup", "invite", "magiclink", "recovery", "email_change_current", "email_change_new")


async def generate_link(request: Request) -> Response:
    ctx = ctx_of(request)
    config = config_of(request)
    require_admin(request, ctx.keys)
    body = await parse_body(request, GenerateLinkBody)
    email = validate_email(body.email)
    redirect_to = otp.redirect_target(
        config, body.redirect_to or request.query_params.get("redirect_to", "")
    )
    link_type = body.type
    if link_type not in _TYPES:
        raise bad_request(
            "validation_failed", f"Invalid email action link type requested: {link_type}"
        )
    if link_type == "email_change_current" and not config.email.double_confirm_changes:
        raise bad_request(
            "validation_failed",
            "Enable secure email change to generate link for current email",
        )
    code = otp.generate_otp(config.email.otp_length)
    hashed = otp.token_hash(email, code)
    async with store.transaction(ctx) as conn:
        user = await store.find_user_by_email(conn, email)
        if user is None:
            if link_type == "magiclink":
                link_type = "signup"
            elif link_type in ("recovery", "email_change_current", "email_change_new"):
                raise not_found("user_not_found", "User with this email not found")
        changes: dict[str, Any]
        stored = hashed
        if link_type in ("magiclink", "recovery"):
            assert user is not None
            changes = {"recovery_token": hashed, "recovery_sent_at": store.NOW}
        elif link_type in ("signup", "invite"):
            if user is not None and user["email_confirmed_at"] is not None:
                raise unprocessable("email_exists", EMAIL_EXISTS)
            if user is None:
                password = ""
                if link_type == "signup" and body.password:
                    check_password_strength(body.password)
                    password = await hash_password(body.password)
                user = await new_email_user(
                    conn, email, confirmed=False, data=body.data, encrypted_password=password
                )
            changes = {"confirmation_token": hashed, "confirmation_sent_at": store.NOW}
            if link_type == "invite":
                changes["invited_at"] = store.NOW
            elif body.data:
                changes["raw_user_meta_data"] = (user["raw_user_meta_data"] or {}) | body.data
        else:
            assert user is not None
            new_email = validate_email(body.new_email)
            if await store.email_taken(conn, new_email, except_id=user["id"]):
                raise unprocessable("email_exists", EMAIL_EXISTS)
            changes = {
                "email_change": new_email,
                "email_change_sent_at": store.NOW,
                "email_change_confirm_status": 0,
            }
            if link_type == "email_change_current":
                changes["email_change_token_current"] = hashed
            else:
                stored = otp.token_hash(new_email, code)
                changes["email_change_token_new"] = stored
        user = await store.update_user(conn, user["id"], changes)
        assert user is not None
        identities = (await store.identities_of(conn, [user["id"]]))[user["id"]]
    verification = "email_change" if link_type.startswith("email_change") else link_type
    return json_response(
        user_json(user, identities)
        | {
            "action_link": otp.action_link(ctx.auth_url, stored, verification, redirect_to),
            "email_otp": code,
            "hashed_token": stored,
            "verification_type": link_type,
            "redirect_to": redirect_to,
        }
    )
