"""The SQL of passkeys: `auth.webauthn_credentials` and `auth.webauthn_challenges` (GoTrue's).

A challenge is consumed by deleting it (`delete … returning`), so a ceremony's response is
accepted at most once even when two arrive together, as GoTrue's ConsumeWebAuthnChallengeByID.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from app.local.auth.store import Row, fetch_all, fetch_one
from app.local.auth.webauthn_rp import NewCredential


async def insert_challenge(
    conn: AsyncConnection[Any],
    *,
    user_id: uuid.UUID | None,
    kind: str,
    challenge: str,
    expires_at: dt.datetime,
) -> uuid.UUID:
    row = await fetch_one(
        conn,
        "insert into auth.webauthn_challenges (user_id, challenge_type, session_data, expires_at)"
        " values (%s, %s, %s, %s) returning id",
        (
            user_id,
            kind,
            Jsonb({"challenge": challenge, "userVerification": "preferred"}),
            expires_at,
        ),
    )
    assert row is not None
    challenge_id: uuid.UUID = row["id"]
    return challenge_id


async def consume_challenge(
    conn: AsyncConnection[Any], challenge_id: uuid.UUID, kind: str, user_id: uuid.UUID | None
) -> Row | None:
    """The challenge, deleted in the same statement; None if absent, of another kind or user."""
    return await fetch_one(
        conn,
        "delete from auth.webauthn_challenges where id = %s and challenge_type = %s"
        " and user_id is not distinct from %s returning *",
        (challenge_id, kind, user_id),
    )


async def count_credentials(conn: AsyncConnection[Any], user_id: uuid.UUID) -> int:
    row = await fetch_one(
        conn, "select count(*) as n from auth.webauthn_credentials where user_id = %s", (user_id,)
    )
    return int(row["n"]) if row else 0


async def credentials_of(conn: AsyncConnection[Any], user_id: uuid.UUID) -> list[Row]:
    return await fetch_all(
        conn,
        "select * from auth.webauthn_credentials where user_id = %s order by created_at, id",
        (user_id,),
    )


async def find_credential(
    conn: AsyncConnection[Any], passkey_id: uuid.UUID, user_id: uuid.UUID
) -> Row | None:
    return await fetch_one(
        conn,
        "select * from auth.webauthn_credentials where id = %s and user_id = %s",
        (passkey_id, user_id),
    )


async def find_by_credential_id(conn: AsyncConnection[Any], credential_id: bytes) -> Row | None:
    return await fetch_one(
        conn,
        "select * from auth.webauthn_credentials where credential_id = %s",
        (credential_id,),
    )


async def insert_credential(
    conn: AsyncConnection[Any], user_id: uuid.UUID, cred: NewCredential, friendly_name: str
) -> Row:
    row = await fetch_one(
        conn,
        "insert into auth.webauthn_credentials (user_id, credential_id, public_key,"
        " attestation_type, aaguid, sign_count, transports, backup_eligible, backed_up,"
        " friendly_name) values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " returning *",
        (
            user_id,
            cred.credential_id,
            cred.public_key,
            cred.attestation_type,
            uuid.UUID(cred.aaguid) if cred.aaguid else None,
            cred.sign_count,
            Jsonb(cred.transports),
            cred.backup_eligible,
            cred.backed_up,
            friendly_name,
        ),
    )
    assert row is not None
    return row


async def record_use(conn: AsyncConnection[Any], passkey_id: uuid.UUID, sign_count: int) -> None:
    await conn.execute(
        "update auth.webauthn_credentials set sign_count = %s, last_used_at = now(),"
        " updated_at = now() where id = %s",
        (sign_count, passkey_id),
    )


async def rename(conn: AsyncConnection[Any], passkey_id: uuid.UUID, friendly_name: str) -> Row:
    row = await fetch_one(
        conn,
        "update auth.webauthn_credentials set friendly_name = %s, updated_at = now()"
        " where id = %s returning *",
        (friendly_name, passkey_id),
    )
    assert row is not None
    return row


async def delete_credential(conn: AsyncConnection[Any], passkey_id: uuid.UUID) -> None:
    await conn.execute("delete from auth.webauthn_credentials where id = %s", (passkey_id,))
