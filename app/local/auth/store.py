"""The SQL of the Auth stand-in for users and identities (`auth.users`, `auth.identities`).

Connections come from `read` (autocommit) or `transaction` (one transaction) over the pool that
logs in as `supabase_auth_admin`, who owns `auth`. Rows come back as dicts. Values are always
bound parameters; the only composed identifiers are column names from a fixed allow-list.
Sessions and refresh tokens are in `sessions`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from app.local.context import StackContext

Row = dict[str, Any]
INSTANCE_ID = uuid.UUID(int=0)  # GoTrue's single-tenant instance id
AUDIENCE = "authenticated"
EMAIL_APP_METADATA: dict[str, Any] = {"provider": "email", "providers": ["email"]}

# Columns `update_user` may set; nothing else is ever composed into SQL.
_UPDATABLE = frozenset(
    {
        "email",
        "encrypted_password",
        "email_confirmed_at",
        "raw_app_meta_data",
        "raw_user_meta_data",
        "role",
        "banned_until",
        "last_sign_in_at",
        "invited_at",
        "is_anonymous",
        "confirmation_token",
        "confirmation_sent_at",
        "recovery_token",
        "recovery_sent_at",
        "email_change",
        "email_change_token_new",
        "email_change_token_current",
        "email_change_sent_at",
        "email_change_confirm_status",
        "reauthentication_token",
        "reauthentication_sent_at",
    }
)
# The one-time-token columns a link or code may be looked up by.
TOKEN_COLUMNS = frozenset(
    {
        "confirmation_token",
        "recovery_token",
        "email_change_token_new",
        "email_change_token_current",
    }
)


@dataclass(frozen=True)
class NewUser:
    email: str | None
    encrypted_password: str
    confirmed: bool
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    aud: str = AUDIENCE
    role: str = AUDIENCE
    user_metadata: dict[str, Any] = field(default_factory=dict)
    app_metadata: dict[str, Any] = field(default_factory=dict)
    signed_in: bool = False
    banned_until_sql: str | None = None  # an interval, e.g. "3600 seconds"
    is_anonymous: bool = False  # no email, no identity (GoTrue's anonymous sign-in)
    invited: bool = False


def is_banned(user: Row) -> bool:
    until: dt.datetime | None = user["banned_until"]
    return until is not None and until > dt.datetime.now(dt.UTC)


@contextlib.asynccontextmanager
async def transaction(ctx: StackContext) -> AsyncIterator[AsyncConnection[Any]]:
    """One pooled connection as `supabase_auth_admin`, one transaction (rolled back on error)."""
    async with read(ctx) as conn, conn.transaction():
        yield conn


@contextlib.asynccontextmanager
async def read(ctx: StackContext) -> AsyncIterator[AsyncConnection[Any]]:
    """A pooled connection in autocommit: reads skip the BEGIN/COMMIT round trips."""
    if ctx.auth_pool is None:
        raise RuntimeError("the auth pool is opened by the stack's lifespan")
    async with ctx.auth_pool.connection() as conn:
        if not conn.autocommit:
            await conn.set_autocommit(True)
        yield conn


async def fetch_one(conn: AsyncConnection[Any], query: Any, params: Any = None) -> Row | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)
        return await cur.fetchone()


async def fetch_all(conn: AsyncConnection[Any], query: Any, params: Any = None) -> list[Row]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)
        return await cur.fetchall()


# --- users ------------------------------------------------------------------------------------
async def find_user(conn: AsyncConnection[Any], user_id: uuid.UUID) -> Row | None:
    return await fetch_one(conn, "select * from auth.users where id = %s", (user_id,))


async def find_user_and_session(
    conn: AsyncConnection[Any], user_id: uuid.UUID, session_id: uuid.UUID | None
) -> tuple[Row | None, bool]:
    """The user and whether `session_id` is a live session, in one round trip."""
    row = await fetch_one(
        conn,
        "select u.*, exists(select 1 from auth.sessions s where s.id = %s) as session_alive"
        " from auth.users u where u.id = %s",
        (session_id, user_id),
    )
    if row is None:
        return None, False
    return row, bool(row.pop("session_alive"))


async def find_user_by_email(
    conn: AsyncConnection[Any], email: str, aud: str = AUDIENCE
) -> Row | None:
    return await fetch_one(
        conn,
        "select * from auth.users"
        " where lower(email) = lower(%s) and aud = %s and is_sso_user = false",
        (email, aud),
    )


async def find_user_by_token(
    conn: AsyncConnection[Any], columns: Iterable[str], token: str
) -> Row | None:
    """The user whose one-time token in one of `columns` is exactly `token` (never "")."""
    wanted = [c for c in columns if c in TOKEN_COLUMNS]
    if not token or not wanted:
        return None
    where = sql.SQL(" or ").join(sql.SQL("{} = %(t)s").format(sql.Identifier(c)) for c in wanted)
    query = sql.SQL("select * from auth.users where ({}) for update").format(where)
    return await fetch_one(conn, query, {"t": token})


async def email_taken(
    conn: AsyncConnection[Any], email: str, *, except_id: uuid.UUID | None = None
) -> bool:
    row = await fetch_one(
        conn,
        "select 1 as hit from auth.users where lower(email) = lower(%s)"
        " and is_sso_user = false and id is distinct from %s",
        (email, except_id),
    )
    return row is not None


async def insert_user(conn: AsyncConnection[Any], user: NewUser) -> Row:
    """Insert the user and its email identity; the core migration's trigger adds the profile."""
    row = await fetch_one(
        conn,
        """
        insert into auth.users (
          instance_id, id, aud, role, email, encrypted_password, email_confirmed_at,
          raw_app_meta_data, raw_user_meta_data, created_at, updated_at, last_sign_in_at,
          banned_until, confirmation_token, recovery_token, email_change_token_new, email_change,
          is_sso_user, is_anonymous, invited_at
        ) values (
          %(instance)s, %(id)s, %(aud)s, %(role)s, %(email)s, %(password)s,
          case when %(confirmed)s then now() end,
          %(app)s, %(meta)s, now(), now(), case when %(signed_in)s then now() end,
          now() + %(ban)s::interval, '', '', '', '', false, %(anonymous)s,
          case when %(invited)s then now() end
        ) returning *
        """,
        {
            "instance": INSTANCE_ID,
            "id": user.id,
            "aud": user.aud,
            "role": user.role,
            "email": user.email,
            "password": user.encrypted_password,
            "confirmed": user.confirmed,
            "app": Jsonb(user.app_metadata),
            "meta": Jsonb(user.user_metadata),
            "signed_in": user.signed_in,
            "ban": user.banned_until_sql,
            "anonymous": user.is_anonymous,
            "invited": user.invited,
        },
    )
    assert row is not None
    if user.email is None:
        return row
    await insert_email_identity(conn, user.id, user.email, signed_in=user.signed_in)
    return row


async def insert_email_identity(
    conn: AsyncConnection[Any],
    user_id: uuid.UUID,
    email: str,
    *,
    signed_in: bool = False,
    verified: bool = False,
) -> None:
    await fetch_one(
        conn,
        """
        insert into auth.identities (
          provider_id, user_id, identity_data, provider, last_sign_in_at, created_at, updated_at
        ) values (%s, %s, %s, 'email', case when %s then now() end, now(), now())
        returning id
        """,
        (
            str(user_id),
            user_id,
            Jsonb(_email_identity(user_id, email, verified=verified)),
            signed_in,
        ),
    )


def _email_identity(user_id: uuid.UUID, email: str, *, verified: bool) -> dict[str, Any]:
    return {
        "sub": str(user_id),
        "email": email,
        "email_verified": verified,
        "phone_verified": False,
    }


async def identities_of(
    conn: AsyncConnection[Any], user_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, list[Row]]:
    ids = list(user_ids)
    found: dict[uuid.UUID, list[Row]] = {i: [] for i in ids}
    rows = await fetch_all(
        conn,
        "select * from auth.identities where user_id = any(%s) order by created_at, id",
        (ids,),
    )
    for row in rows:
        found[row["user_id"]].append(row)
    return found


async def update_user(
    conn: AsyncConnection[Any], user_id: uuid.UUID, changes: dict[str, Any]
) -> Row | None:
    """Set the given columns (from a fixed allow-list) and `updated_at`; return the new row."""
    unknown = set(changes) - _UPDATABLE
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    assignments: list[sql.Composable] = [sql.SQL("updated_at = now()")]
    params: list[Any] = []
    for column, value in changes.items():
        if isinstance(value, _Now):
            assignments.append(sql.SQL("{} = now()").format(sql.Identifier(column)))
            continue
        assignments.append(sql.SQL("{} = %s").format(sql.Identifier(column)))
        params.append(Jsonb(value) if isinstance(value, dict) else value)
    query = sql.SQL("update auth.users set {} where id = %s returning *").format(
        sql.SQL(", ").join(assignments)
    )
    return await fetch_one(conn, query, (*params, user_id))


class _Now:
    """Marks a column to be set to the transaction's `now()`."""


NOW = _Now()


async def set_email_identity(conn: AsyncConnection[Any], user_id: uuid.UUID, email: str) -> None:
    """Point the user's email identity at `email`, creating it (an anonymous user) if absent."""
    row = await fetch_one(
        conn,
        "update auth.identities set identity_data = identity_data || %s, updated_at = now()"
        " where user_id = %s and provider = 'email' returning id",
        (Jsonb({"email": email}), user_id),
    )
    if row is None:
        await insert_email_identity(conn, user_id, email, verified=True)


async def record_sign_in(conn: AsyncConnection[Any], user_id: uuid.UUID) -> Row | None:
    await fetch_one(
        conn,
        "update auth.identities set last_sign_in_at = now() where user_id = %s returning id",
        (user_id,),
    )
    return await update_user(conn, user_id, {"last_sign_in_at": NOW})


async def list_users(
    conn: AsyncConnection[Any], *, page: int, per_page: int, text: str = ""
) -> tuple[list[Row], int]:
    """A page of users, newest first, and the total (GoTrue's `FindUsersInAudience`)."""
    where: sql.Composable = sql.SQL("aud = %(aud)s")
    params: dict[str, Any] = {"aud": AUDIENCE}
    if text:
        where = sql.SQL(
            "{} and (email ilike %(like)s or raw_user_meta_data->>'full_name' ilike %(like)s)"
        ).format(where)
        params["like"] = f"%{_escape_like(text)}%"
    total_row = await fetch_one(
        conn, sql.SQL("select count(*) as n from auth.users where {}").format(where), params
    )
    rows = await fetch_all(
        conn,
        sql.SQL(
            "select * from auth.users where {} order by created_at desc, id"
            " limit %(limit)s offset %(offset)s"
        ).format(where),
        params | {"limit": per_page, "offset": (page - 1) * per_page},
    )
    return rows, int(total_row["n"]) if total_row else 0


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def delete_user(conn: AsyncConnection[Any], user_id: uuid.UUID) -> None:
    """Hard delete: identities, sessions and refresh tokens go with the row (cascades)."""
    await fetch_one(conn, "delete from auth.users where id = %s returning id", (user_id,))


async def soft_delete_user(conn: AsyncConnection[Any], user: Row) -> None:
    """GoTrue's soft delete: keep the row, obfuscate what identifies the person, drop its MFA
    factors.

    The caller ends the sessions too (`auth_sessions.end_sessions`).
    """
    user_id: uuid.UUID = user["id"]
    hidden = _obfuscate(user_id, user["email"] or "")
    await fetch_one(
        conn,
        "update auth.users set email = %s, phone = null, encrypted_password = '',"
        " email_change = '', raw_user_meta_data = '{}', raw_app_meta_data = '{}',"
        " deleted_at = now(), updated_at = now() where id = %s returning id",
        (hidden, user_id),
    )
    await fetch_all(
        conn,
        "update auth.identities"
        " set provider_id = encode(sha256((%s || provider_id)::bytea), 'hex'),"
        " identity_data = '{}', updated_at = now() where user_id = %s returning id",
        (str(user_id), user_id),
    )
    # GoTrue hard-deletes the factors of a soft-deleted user (DeleteFactorsByUserId).
    await fetch_all(
        conn, "delete from auth.mfa_factors where user_id = %s returning id", (user_id,)
    )


def _obfuscate(user_id: uuid.UUID, value: str) -> str:
    return hashlib.sha256(f"{user_id}{value}".encode()).hexdigest()
