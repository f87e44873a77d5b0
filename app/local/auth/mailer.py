"""Sending a one-time token by mail, as GoTrue's `send*` functions do (internal/api/mail.go).

Each send checks the per-user frequency (`[auth.email] max_frequency`) and the project's email
budget (`[auth.rate_limit] email_sent`), makes a fresh code, stores its hash on the user (with
the `pkce_` prefix for PKCE flows) and its `*_sent_at`, and drops the mail in the local sink.
The caller owns the transaction.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection
from starlette.requests import Request

from app.local.auth import otp, store
from app.local.auth.errors import bad_request
from app.local.auth.issue import config_of, ctx_of, limiter_of, mailbox
from app.local.auth.mail import Mail


@dataclass(frozen=True)
class Kind:
    """One mail kind: its GoTrue action type, the link's `type`, and where its token lives."""

    action: str
    link_type: str
    token_column: str
    sent_column: str
    frequency_limited: bool = True
    has_link: bool = True


SIGNUP = Kind("signup", "signup", "confirmation_token", "confirmation_sent_at")
INVITE = Kind("invite", "invite", "confirmation_token", "confirmation_sent_at", False)
MAGICLINK = Kind("magiclink", "magiclink", "recovery_token", "recovery_sent_at")
RECOVERY = Kind("recovery", "recovery", "recovery_token", "recovery_sent_at")
EMAIL_CHANGE_NEW = Kind(
    "email_change", "email_change", "email_change_token_new", "email_change_sent_at"
)
EMAIL_CHANGE_CURRENT = Kind(
    "email_change", "email_change", "email_change_token_current", "email_change_sent_at"
)
REAUTHENTICATION = Kind(
    "reauthentication",
    "reauthentication",
    "reauthentication_token",
    "reauthentication_sent_at",
    has_link=False,
)


def redirect_of(request: Request, explicit: str = "") -> str:
    """Where the link sends the browser: `redirect_to` (query or body) if allowed, else site."""
    wanted = explicit or request.query_params.get("redirect_to", "")
    return otp.redirect_target(config_of(request), wanted)


async def send(
    request: Request,
    conn: AsyncConnection[Any],
    user: store.Row,
    kind: Kind,
    *,
    pkce: bool = False,
    to: str | None = None,
    check_frequency: bool = True,
) -> store.Row:
    """Mail `user` a fresh code and link of `kind`; return the updated user row."""
    config = config_of(request)
    address = to or user["email"]
    if not address:
        raise bad_request("validation_failed", "The user has no email address")
    if kind.frequency_limited and check_frequency:
        too_soon = otp.frequency_error(user[kind.sent_column], config.email.max_frequency_seconds)
        if too_soon is not None:
            raise too_soon
    limiter_of(request).check_email()
    code = otp.generate_otp(config.email.otp_length)
    stored = otp.with_flow_prefix(otp.token_hash(address, code), pkce)
    changes: dict[str, Any] = {kind.token_column: stored, kind.sent_column: store.NOW}
    if kind is INVITE:
        changes["invited_at"] = store.NOW
    updated = await store.update_user(conn, user["id"], changes)
    assert updated is not None
    redirect_to = redirect_of(request)
    link = (
        otp.action_link(ctx_of(request).auth_url, stored, kind.link_type, redirect_to)
        if kind.has_link
        else ""
    )
    mailbox(request).deliver(
        Mail(
            to=address,
            kind=kind.action,
            link=link,
            otp=code,
            token_hash=stored,
            redirect_to=redirect_to,
        )
    )
    return updated


async def start_flow(
    conn: AsyncConnection[Any],
    user_id: uuid.UUID,
    *,
    method: str,
    challenge: str,
    authentication_method: str,
) -> None:
    await otp.create_flow_state(
        conn,
        user_id=user_id,
        method=method,
        challenge=challenge,
        authentication_method=authentication_method,
    )
