"""MFA factors, their challenges and sessions' AMR claims (GoTrue's `auth.mfa_factors`,
`auth.mfa_challenges`, `auth.mfa_amr_claims`): the SQL, the factor JSON, a session's assurance.

Every sign-in records its method as a claim of its session (GoTrue's `AddClaimToSession`) and a
verified factor adds its own, so a token's `aal` and `amr` are the session's
(`CalculateAALAndAMR`): a refresh keeps what the session proved, an unenrolment takes it back.
Factor types other than TOTP (WebAuthn, phone) use the same rows. The caller owns the transaction.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from app.local.auth.store import Row, fetch_all, fetch_one
from app.local.auth.users import rfc3339

TOTP = "totp"
WEBAUTHN = "webauthn"
PHONE = "phone"
AAL1 = "aal1"
AAL2 = "aal2"
# The AMR method a verified factor of each type adds (GoTrue's AuthenticationMethod names).
FACTOR_METHODS = {TOTP: "totp", PHONE: "mfa/phone", WEBAUTHN: "mfa/webauthn"}
_AAL2_METHODS = frozenset(FACTOR_METHODS.values())


@dataclass(frozen=True)
class Assurance:
    """A session's `aal` and its `amr` entries, most recent first (the token claims)."""

    aal: str
    amr: list[dict[str, Any]]


def factor_json(row: Row) -> dict[str, Any]:
    """GoTrue's `Factor` JSON (the secret and WebAuthn credential never leave the server)."""
    out: dict[str, Any] = {
        "id": str(row["id"]),
        "created_at": rfc3339(row["created_at"]),
        "updated_at": rfc3339(row["updated_at"]),
        "status": row["status"],
    }
    if row["friendly_name"]:
        out["friendly_name"] = row["friendly_name"]
    out["factor_type"] = row["factor_type"]
    out["phone"] = row["phone"] or ""
    challenged = row["last_challenged_at"]
    out["last_challenged_at"] = rfc3339(challenged) if challenged is not None else None
    if row["web_authn_aaguid"] is not None:
        out["web_authn_aaguid"] = str(row["web_authn_aaguid"])
    if row["last_webauthn_challenge_data"]:
        out["last_webauthn_challenge_data"] = row["last_webauthn_challenge_data"]
    return out


async def factors_of(
    conn: AsyncConnection[Any], user_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, list[Row]]:
    ids = list(user_ids)
    found: dict[uuid.UUID, list[Row]] = {i: [] for i in ids}
    rows = await fetch_all(
        conn,
        "select * from auth.mfa_factors where user_id = any(%s) order by created_at, id",
        (ids,),
    )
    for row in rows:
        found[row["user_id"]].append(row)
    return found


async def find_owned_factor(
    conn: AsyncConnection[Any], user_id: uuid.UUID, factor_id: uuid.UUID
) -> Row | None:
    return await fetch_one(
        conn,
        "select * from auth.mfa_factors where id = %s and user_id = %s",
        (factor_id, user_id),
    )


async def insert_factor(
    conn: AsyncConnection[Any],
    user_id: uuid.UUID,
    *,
    factor_type: str,
    friendly_name: str,
    secret: str | None = None,
) -> Row:
    row = await fetch_one(
        conn,
        "insert into auth.mfa_factors"
        " (id, user_id, friendly_name, factor_type, status, created_at, updated_at, secret)"
        " values (%s, %s, %s, %s, 'unverified', now(), now(), %s)"
        " returning *",
        (uuid.uuid4(), user_id, friendly_name, factor_type, secret),
    )
    assert row is not None
    return row


async def delete_expired_factors(conn: AsyncConnection[Any], *, expiry_seconds: int) -> None:
    """GoTrue's DeleteExpiredFactors: unverified, never challenged, older than the expiry."""
    await fetch_all(
        conn,
        "delete from auth.mfa_factors f where status <> 'verified'"
        " and not exists (select 1 from auth.mfa_challenges c where c.factor_id = f.id)"
        " and created_at + make_interval(secs => %s) < now() returning id",
        (expiry_seconds,),
    )


async def delete_factor(conn: AsyncConnection[Any], factor_id: uuid.UUID) -> None:
    await fetch_one(conn, "delete from auth.mfa_factors where id = %s returning id", (factor_id,))


async def rename_factor(conn: AsyncConnection[Any], factor_id: uuid.UUID, name: str) -> Row:
    row = await fetch_one(
        conn,
        "update auth.mfa_factors set friendly_name = %s, updated_at = now()"
        " where id = %s returning *",
        (name, factor_id),
    )
    assert row is not None
    return row


async def verify_factor(conn: AsyncConnection[Any], factor_id: uuid.UUID) -> None:
    await fetch_one(
        conn,
        "update auth.mfa_factors set status = 'verified', updated_at = now()"
        " where id = %s returning id",
        (factor_id,),
    )


async def delete_unverified_factors(
    conn: AsyncConnection[Any], user_id: uuid.UUID, factor_type: str
) -> None:
    await fetch_all(
        conn,
        "delete from auth.mfa_factors where user_id = %s and status = 'unverified'"
        " and factor_type = %s returning id",
        (user_id, factor_type),
    )


async def keep_webauthn_credential(
    conn: AsyncConnection[Any], factor_id: uuid.UUID, credential: dict[str, Any]
) -> None:
    """GoTrue's SaveWebAuthnCredential: the key (go-webauthn JSON) and its AAGUID, if any."""
    aaguid = base64.b64decode(credential.get("authenticator", {}).get("AAGUID") or "")
    await fetch_one(
        conn,
        "update auth.mfa_factors set web_authn_credential = %s, web_authn_aaguid = %s,"
        " updated_at = now() where id = %s returning id",
        (Jsonb(credential), uuid.UUID(bytes=aaguid) if len(aaguid) == 16 else None, factor_id),
    )


# --- challenges -----------------------------------------------------------------------------------
async def create_challenge(
    conn: AsyncConnection[Any],
    factor_id: uuid.UUID,
    *,
    ip: str,
    web_authn_session_data: Any = None,
) -> Row:
    """A challenge bound to the caller's address; the factor's `last_challenged_at` moves."""
    row = await fetch_one(
        conn,
        "insert into auth.mfa_challenges (id, factor_id, created_at, ip_address,"
        " web_authn_session_data) values (%s, %s, now(), %s, %s) returning *",
        (uuid.uuid4(), factor_id, ip, web_authn_session_data),
    )
    await fetch_one(
        conn,
        "update auth.mfa_factors set last_challenged_at = now() where id = %s returning id",
        (factor_id,),
    )
    assert row is not None
    return row


async def find_challenge(
    conn: AsyncConnection[Any], factor_id: uuid.UUID, challenge_id: uuid.UUID
) -> Row | None:
    return await fetch_one(
        conn,
        "select *, host(ip_address) as ip from auth.mfa_challenges"
        " where id = %s and factor_id = %s for update",
        (challenge_id, factor_id),
    )


async def mark_challenge_verified(conn: AsyncConnection[Any], challenge_id: uuid.UUID) -> None:
    await fetch_one(
        conn,
        "update auth.mfa_challenges set verified_at = now() where id = %s returning id",
        (challenge_id,),
    )


async def delete_challenge(conn: AsyncConnection[Any], challenge_id: uuid.UUID) -> None:
    await fetch_one(
        conn, "delete from auth.mfa_challenges where id = %s returning id", (challenge_id,)
    )


# --- sessions: AMR claims and AAL -----------------------------------------------------------------
async def add_amr_claim(conn: AsyncConnection[Any], session_id: uuid.UUID, method: str) -> None:
    """Record `method` for the session; a method used again only moves its timestamp."""
    await fetch_one(
        conn,
        "insert into auth.mfa_amr_claims"
        " (id, session_id, created_at, updated_at, authentication_method)"
        " values (%s, %s, now(), now(), %s)"
        " on conflict on constraint mfa_amr_claims_session_id_authentication_method_pkey"
        " do update set updated_at = now() returning id",
        (uuid.uuid4(), session_id, method),
    )


async def assurance_of(conn: AsyncConnection[Any], session_id: uuid.UUID) -> Assurance:
    rows = await fetch_all(
        conn,
        "select authentication_method, updated_at from auth.mfa_amr_claims"
        " where session_id = %s order by updated_at desc, created_at desc",
        (session_id,),
    )
    aal = AAL2 if any(r["authentication_method"] in _AAL2_METHODS for r in rows) else AAL1
    amr = [
        {"method": r["authentication_method"], "timestamp": int(r["updated_at"].timestamp())}
        for r in rows
    ]
    return Assurance(aal=aal, amr=amr)


async def session_aal(conn: AsyncConnection[Any], session_id: uuid.UUID) -> str:
    row = await fetch_one(conn, "select aal from auth.sessions where id = %s", (session_id,))
    return str(row["aal"]) if row is not None and row["aal"] else AAL1


async def upgrade_session(
    conn: AsyncConnection[Any], session_id: uuid.UUID, *, aal: str, factor_id: uuid.UUID
) -> None:
    await fetch_one(
        conn,
        "update auth.sessions set aal = %s, factor_id = %s, updated_at = now()"
        " where id = %s returning id",
        (aal, factor_id, session_id),
    )


async def end_sessions_below_aal2(conn: AsyncConnection[Any], user_id: uuid.UUID) -> None:
    """GoTrue's InvalidateSessionsWithAALLessThan(aal2): the user's aal1 sessions end."""
    await fetch_all(
        conn,
        "delete from auth.sessions where user_id = %s and aal < %s returning id",
        (user_id, AAL2),
    )


async def downgrade_sessions(conn: AsyncConnection[Any], factor: Row) -> None:
    """The sessions the factor raised lose its claim and go back to aal1.

    GoTrue deletes the claim named like the factor type, which for WebAuthn (`mfa/webauthn`)
    matches nothing; here the factor's own method is deleted, whatever its type.
    """
    method = FACTOR_METHODS.get(factor["factor_type"], factor["factor_type"])
    await fetch_all(
        conn,
        "delete from auth.mfa_amr_claims where authentication_method = %s and session_id in"
        " (select id from auth.sessions where factor_id = %s) returning id",
        (method, factor["id"]),
    )
    await fetch_all(
        conn,
        "update auth.sessions set aal = %s, factor_id = null"
        " where user_id = %s and factor_id = %s returning id",
        (AAL1, factor["user_id"], factor["id"]),
    )
