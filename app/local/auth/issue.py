"""What every Auth stand-in handler shares: its settings, its limiter, its mailbox, and how a
session is started and answered (GoTrue's `AccessTokenResponse`)."""

from __future__ import annotations

import time
import uuid
from typing import Any, TypedDict

from psycopg import AsyncConnection
from starlette.requests import Request
from starlette.responses import Response

from app.local.auth import sessions, store
from app.local.auth.config import AuthConfig
from app.local.auth.errors import json_response
from app.local.auth.factors import Assurance, factor_json, factors_of
from app.local.auth.mail import Mailbox, mailbox_of
from app.local.auth.ratelimit import RateLimiter
from app.local.auth.users import session_json, user_json
from app.local.context import StackContext


def ctx_of(request: Request) -> StackContext:
    ctx: StackContext = request.app.state.ctx
    return ctx


def config_of(request: Request) -> AuthConfig:
    config: AuthConfig = request.app.state.config
    return config


def limiter_of(request: Request) -> RateLimiter:
    limiter: RateLimiter = request.app.state.limiter
    return limiter


def mailbox(request: Request) -> Mailbox:
    return mailbox_of(ctx_of(request))


class ClientInfo(TypedDict):
    user_agent: str | None
    ip: str | None


def client_info(request: Request) -> ClientInfo:
    host = request.client.host if request.client else None
    return {"user_agent": request.headers.get("user-agent"), "ip": host}


def session_body(
    ctx: StackContext,
    config: AuthConfig,
    user: store.Row,
    identities: list[store.Row],
    session_id: uuid.UUID,
    refresh_token: str,
    *,
    amr_method: str = "password",
    assurance: Assurance | None = None,
    factors: list[store.Row] | None = None,
) -> dict[str, Any]:
    """`assurance` (the session's recorded claims) for a session that may have more than the
    one method it began with: a refresh, an MFA verification."""
    issued_at = int(time.time())
    access_token = ctx.keys.user_access_token(
        user_id=str(user["id"]),
        issuer=ctx.jwt_issuer,
        email=user["email"] or "",
        session_id=str(session_id),
        expires_in=config.jwt_expiry,
        user_metadata=user["raw_user_meta_data"] or {},
        app_metadata=user["raw_app_meta_data"] or {},
        now=issued_at,
        is_anonymous=bool(user["is_anonymous"]),
        amr_method=amr_method,
        aal=assurance.aal if assurance else "aal1",
        amr=assurance.amr if assurance else None,
    )
    return session_json(
        access_token=access_token,
        refresh_token=refresh_token,
        issued_at=issued_at,
        expires_in=config.jwt_expiry,
        user=user_json(user, identities, [factor_json(f) for f in factors or []]),
    )


async def start_session(
    request: Request, conn: AsyncConnection[Any], user: store.Row, *, amr_method: str
) -> dict[str, Any]:
    """A new session for `user` (inside the caller's transaction) and its response body."""
    session_id, refresh = await sessions.start_session(
        conn, user["id"], **client_info(request), amr_method=amr_method
    )
    identities = (await store.identities_of(conn, [user["id"]]))[user["id"]]
    factors = (await factors_of(conn, [user["id"]]))[user["id"]]
    return session_body(
        ctx_of(request),
        config_of(request),
        user,
        identities,
        session_id,
        refresh,
        amr_method=amr_method,
        factors=factors,
    )


def session_response(
    ctx: StackContext,
    user: store.Row,
    identities: list[store.Row],
    session_id: uuid.UUID,
    refresh_token: str,
    *,
    config: AuthConfig,
    amr_method: str = "password",
    assurance: Assurance | None = None,
    factors: list[store.Row] | None = None,
) -> Response:
    return json_response(
        session_body(
            ctx,
            config,
            user,
            identities,
            session_id,
            refresh_token,
            amr_method=amr_method,
            assurance=assurance,
            factors=factors,
        )
    )


async def user_response(conn: AsyncConnection[Any], user: store.Row) -> Response:
    identities = (await store.identities_of(conn, [user["id"]]))[user["id"]]
    factors = (await factors_of(conn, [user["id"]]))[user["id"]]
    return json_response(user_json(user, identities, [factor_json(f) for f in factors]))
