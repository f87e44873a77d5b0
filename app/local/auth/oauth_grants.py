"""The OAuth 2.1 server's authorization requests and consents (`auth.oauth_authorizations`,
`auth.oauth_consents`), as GoTrue v2.189's models keep them.

An authorization starts `pending` with a random 32-character `authorization_id` (what the
consent page is given) and lives 10 minutes (GoTrue's `authorization_ttl`). The signed-in user
who first opens it owns it; approving sets its `authorization_code` (a UUID), which the token
endpoint spends once by deleting the row. A consent remembers the scopes a user granted a
client, so a later request within them is approved without asking.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import string
import uuid
from typing import Any

from psycopg import AsyncConnection

from app.local.auth import store
from app.local.auth.errors import OAuthError

AUTHORIZATION_TTL_SECONDS = 600  # GOTRUE_OAUTH_SERVER_AUTHORIZATION_TTL default: 10m
DEFAULT_SCOPE = "email"  # GOTRUE_OAUTH_SERVER_DEFAULT_SCOPE default
SUPPORTED_SCOPES = ("openid", "profile", "email", "phone")
_ALPHANUMERIC = string.ascii_letters + string.digits


def parse_scopes(text: str) -> list[str]:
    return [scope for scope in text.strip().split(" ") if scope.strip()]


def pkce_matches(challenge: str, method: str, verifier: str) -> bool:
    """RFC 7636: `S256` (base64url SHA-256 of the verifier) or `plain`."""
    if method == "s256":
        digest = hashlib.sha256(verifier.encode()).digest()
        expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    else:
        expected = verifier
    return hmac.compare_digest(expected, challenge)


async def create_authorization(
    conn: AsyncConnection[Any],
    *,
    client_id: uuid.UUID,
    redirect_uri: str,
    scope: str,
    state: str,
    resource: str,
    code_challenge: str,
    code_challenge_method: str,
    nonce: str,
) -> store.Row:
    row = await store.fetch_one(
        conn,
        "insert into auth.oauth_authorizations (id, authorization_id, client_id, redirect_uri,"
        " scope, state, resource, code_challenge, code_challenge_method, nonce, expires_at)"
        " values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, now() + make_interval(secs => %s))"
        " returning *",
        (
            uuid.uuid4(),
            "".join(secrets.choice(_ALPHANUMERIC) for _ in range(32)),
            client_id,
            redirect_uri,
            scope,
            state or None,
            resource or None,
            code_challenge or None,
            code_challenge_method.lower() or None,
            nonce or None,
            AUTHORIZATION_TTL_SECONDS,
        ),
    )
    assert row is not None
    return row


async def find_authorization(
    conn: AsyncConnection[Any], authorization_id: str, *, lock: bool = False
) -> store.Row | None:
    """The request with its client's name, URI and logo, and whether it has expired."""
    return await store.fetch_one(conn, _LOCKED if lock else _UNLOCKED, (authorization_id,))


_UNLOCKED = (
    "select a.*, a.expires_at < now() as expired, c.client_name, c.client_uri, c.logo_uri"
    " from auth.oauth_authorizations a join auth.oauth_clients c on c.id = a.client_id"
    " where a.authorization_id = %s"
)
_LOCKED = _UNLOCKED + " for update of a"


async def find_by_code(conn: AsyncConnection[Any], code: str) -> store.Row | None:
    return await store.fetch_one(
        conn,
        "select *, expires_at < now() as expired from auth.oauth_authorizations"
        " where authorization_code = %s and status = 'approved' for update",
        (code,),
    )


async def set_status(conn: AsyncConnection[Any], row_id: uuid.UUID, status: str) -> None:
    await conn.execute(
        "update auth.oauth_authorizations set status = %s where id = %s", (status, row_id)
    )


async def set_user(conn: AsyncConnection[Any], row_id: uuid.UUID, user_id: uuid.UUID) -> None:
    await conn.execute(
        "update auth.oauth_authorizations set user_id = %s where id = %s", (user_id, row_id)
    )


async def approve(conn: AsyncConnection[Any], row_id: uuid.UUID) -> str:
    """Approve a pending request; its new authorization code."""
    code = str(uuid.uuid4())
    await conn.execute(
        "update auth.oauth_authorizations set status = 'approved', approved_at = now(),"
        " authorization_code = %s where id = %s",
        (code, row_id),
    )
    return code


async def spend(conn: AsyncConnection[Any], row_id: uuid.UUID) -> None:
    """A code is good once: GoTrue deletes the authorization it exchanged."""
    await conn.execute("delete from auth.oauth_authorizations where id = %s", (row_id,))


# --- consents -------------------------------------------------------------------------------------
async def active_consent(
    conn: AsyncConnection[Any], user_id: uuid.UUID, client_id: uuid.UUID
) -> store.Row | None:
    return await store.fetch_one(
        conn,
        "select * from auth.oauth_consents"
        " where user_id = %s and client_id = %s and revoked_at is null",
        (user_id, client_id),
    )


async def grant_consent(
    conn: AsyncConnection[Any], user_id: uuid.UUID, client_id: uuid.UUID, scopes: list[str]
) -> None:
    """GoTrue's upsert: one row per user and client; a new grant replaces a revoked one."""
    await conn.execute(
        "insert into auth.oauth_consents (id, user_id, client_id, scopes) values (%s, %s, %s, %s)"
        " on conflict (user_id, client_id) do update set scopes = excluded.scopes,"
        " granted_at = now(), revoked_at = null",
        (uuid.uuid4(), user_id, client_id, " ".join(scopes)),
    )


async def consents_of(conn: AsyncConnection[Any], user_id: uuid.UUID) -> list[store.Row]:
    """A user's active grants, newest first, with their (live) clients."""
    return await store.fetch_all(
        conn,
        "select o.*, c.client_name, c.client_uri, c.logo_uri from auth.oauth_consents o"
        " join auth.oauth_clients c on c.id = o.client_id and c.deleted_at is null"
        " where o.user_id = %s and o.revoked_at is null order by o.granted_at desc",
        (user_id,),
    )


async def revoke_consent(
    conn: AsyncConnection[Any], consent_id: uuid.UUID, user_id: uuid.UUID, client_id: uuid.UUID
) -> None:
    """Revoke the grant and end every session the client holds for the user."""
    await conn.execute(
        "update auth.oauth_consents set revoked_at = now() where id = %s", (consent_id,)
    )
    await conn.execute(
        "delete from auth.sessions where user_id = %s and oauth_client_id = %s",
        (user_id, client_id),
    )


async def bind_session(
    conn: AsyncConnection[Any], session_id: uuid.UUID, client_id: uuid.UUID, scope: str
) -> None:
    """Mark a session as the OAuth client's, with the scopes the user granted it."""
    await conn.execute(
        "update auth.sessions set oauth_client_id = %s, scopes = %s where id = %s",
        (client_id, scope, session_id),
    )


async def session_scopes(conn: AsyncConnection[Any], session_id: uuid.UUID) -> list[str] | None:
    """The scopes of a session (none for a session no OAuth client holds); None: no session."""
    row = await store.fetch_one(
        conn, "select scopes from auth.sessions where id = %s", (session_id,)
    )
    return None if row is None else parse_scopes(row["scopes"] or "")


async def session_client(conn: AsyncConnection[Any], refresh_token: str) -> store.Row | None:
    """The session of a refresh token with its OAuth client (None: token unknown)."""
    return await store.fetch_one(
        conn,
        "select s.id, s.oauth_client_id, s.scopes from auth.refresh_tokens t"
        " join auth.sessions s on s.id = t.session_id where t.token = %s",
        (refresh_token,),
    )


async def refuse_client_session(conn: AsyncConnection[Any], refresh_token: str) -> None:
    """`/token`'s refresh grant is not for a session an OAuth client holds: that client must
    refresh it at `/oauth/token`, authenticating itself (GoTrue's token service)."""
    session = await session_client(conn, refresh_token)
    if session is not None and session["oauth_client_id"] is not None:
        raise OAuthError("invalid_client", "Client authentication required for OAuth session")
