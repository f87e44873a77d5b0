"""Sessions and refresh tokens of the Auth stand-in (`auth.sessions`, `auth.refresh_tokens`).

Refresh tokens are opaque random strings that rotate on every use. As in GoTrue
(`tokens.Service.RefreshTokenGrant`), a spent token presented again is still honoured when it is
the parent of the session's active token (the client lost the answer: it gets that active token
back, no new one) or when it was spent less than `refresh_token_reuse_interval` seconds ago (a
fresh child is issued). Any other reuse revokes every token of its session (token-family
revocation), so a stolen token dies with the legitimate one. The caller owns the transaction.
"""

from __future__ import annotations

import enum
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection

from app.local.auth.factors import add_amr_claim
from app.local.auth.store import INSTANCE_ID, Row, fetch_all, fetch_one, find_user, is_banned


class RefreshOutcome(enum.Enum):
    ROTATED = "rotated"
    NOT_FOUND = "not_found"
    REUSED = "reused"
    NO_SESSION = "no_session"
    BANNED = "banned"


@dataclass(frozen=True)
class Refresh:
    outcome: RefreshOutcome
    user: Row | None = None
    session_id: uuid.UUID | None = None
    token: str = ""


def new_refresh_token() -> str:
    """An opaque, unguessable refresh token (GoTrue's legacy tokens are random strings too)."""
    return secrets.token_urlsafe(16)


async def start_session(
    conn: AsyncConnection[Any],
    user_id: uuid.UUID,
    *,
    user_agent: str | None,
    ip: str | None,
    amr_method: str = "password",
) -> tuple[uuid.UUID, str]:
    """A new session, the AMR claim of how it began, and its first refresh token."""
    session_id = uuid.uuid4()
    await fetch_one(
        conn,
        "insert into auth.sessions (id, user_id, created_at, updated_at, aal, user_agent, ip)"
        " values (%s, %s, now(), now(), 'aal1', %s, %s) returning id",
        (session_id, user_id, user_agent, ip),
    )
    await add_amr_claim(conn, session_id, amr_method)
    token = await _issue_token(conn, user_id, session_id, parent=None)
    return session_id, token


async def _issue_token(
    conn: AsyncConnection[Any], user_id: uuid.UUID, session_id: uuid.UUID, *, parent: str | None
) -> str:
    token = new_refresh_token()
    await fetch_one(
        conn,
        "insert into auth.refresh_tokens"
        " (instance_id, token, user_id, revoked, created_at, updated_at, parent, session_id)"
        " values (%s, %s, %s, false, now(), now(), %s, %s) returning id",
        (INSTANCE_ID, token, str(user_id), parent, session_id),
    )
    return token


async def swap_refresh_token(
    conn: AsyncConnection[Any], user_id: uuid.UUID, session_id: uuid.UUID
) -> str:
    """GoTrue's GrantRefreshTokenSwap (an MFA verification): the session's active token is
    spent and its child becomes the one the client holds."""
    active = await fetch_all(
        conn,
        "update auth.refresh_tokens set revoked = true, updated_at = now()"
        " where session_id = %s and not revoked returning token",
        (session_id,),
    )
    parent = active[-1]["token"] if active else None
    return await _issue_token(conn, user_id, session_id, parent=parent)


async def rotate_refresh_token(
    conn: AsyncConnection[Any],
    token: str,
    *,
    reuse_interval: int,
    user_agent: str | None,
    ip: str | None,
) -> Refresh:
    """Spend `token` and issue its child (or honour a reuse, see the module docstring).

    The row is locked, so concurrent refreshes with one token run one after the other: the
    first rotates, the others find its child active and get that same child back.
    """
    old = await fetch_one(
        conn,
        "select id, token, revoked, session_id, user_id,"
        " updated_at + make_interval(secs => %s) >= now() as within_reuse_interval"
        " from auth.refresh_tokens where token = %s for update",
        (reuse_interval, token),
    )
    if old is None:
        return Refresh(RefreshOutcome.NOT_FOUND)
    session_id: uuid.UUID | None = old["session_id"]
    if session_id is None:
        await fetch_one(
            conn, "delete from auth.refresh_tokens where id = %s returning id", (old["id"],)
        )
        return Refresh(RefreshOutcome.NO_SESSION)
    user = await find_user(conn, uuid.UUID(old["user_id"]))
    if user is None:
        return Refresh(RefreshOutcome.NOT_FOUND)
    if is_banned(user):
        return Refresh(RefreshOutcome.BANNED, user=user)
    issued = ""
    if old["revoked"]:
        active = await fetch_one(
            conn,
            "select token, parent from auth.refresh_tokens"
            " where session_id = %s and not revoked order by id desc limit 1",
            (session_id,),
        )
        if active is not None and active["parent"] == old["token"]:
            issued = active["token"]  # the client never stored its last answer
        elif active is None:
            # The family was revoked already (rotation always leaves one token active). GoTrue
            # would honour a member spent less than the interval ago; the stand-in keeps the
            # family dead, so a replay inside that window cannot revive a revoked session.
            return Refresh(RefreshOutcome.REUSED, user=user, session_id=session_id)
        elif not old["within_reuse_interval"]:
            await fetch_all(
                conn,
                "update auth.refresh_tokens set revoked = true, updated_at = now()"
                " where session_id = %s and not revoked returning id",
                (session_id,),
            )
            return Refresh(RefreshOutcome.REUSED, user=user, session_id=session_id)
    else:
        await fetch_one(
            conn,
            "update auth.refresh_tokens set revoked = true, updated_at = now() where id = %s"
            " returning id",
            (old["id"],),
        )
    if not issued:
        issued = await _issue_token(conn, user["id"], session_id, parent=old["token"])
    await fetch_one(
        conn,
        "update auth.sessions set refreshed_at = now() at time zone 'utc', updated_at = now(),"
        " user_agent = %s, ip = %s where id = %s returning id",
        (user_agent, ip, session_id),
    )
    return Refresh(RefreshOutcome.ROTATED, user=user, session_id=session_id, token=issued)


async def end_sessions(
    conn: AsyncConnection[Any],
    user_id: uuid.UUID,
    *,
    only: uuid.UUID | None = None,
    keep: uuid.UUID | None = None,
) -> None:
    """Delete the user's sessions (all, `only` one, or all but `keep`); tokens cascade."""
    if only is not None:
        query = "delete from auth.sessions where user_id = %(uid)s and id = %(sid)s returning id"
    elif keep is not None:
        query = "delete from auth.sessions where user_id = %(uid)s and id <> %(sid)s returning id"
    else:
        query = "delete from auth.sessions where user_id = %(uid)s returning id"
    await fetch_all(conn, query, {"uid": user_id, "sid": only or keep})


async def revoke_refresh_tokens(conn: AsyncConnection[Any], user_id: uuid.UUID) -> None:
    """Revoke every refresh token of the user (logout with a token that names no session)."""
    await fetch_all(
        conn,
        "update auth.refresh_tokens set revoked = true, updated_at = now()"
        " where user_id = %s returning id",
        (str(user_id),),
    )
