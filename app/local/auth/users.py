"""User, identity and session JSON exactly as GoTrue serialises them.

Rows come from `store` as dicts (psycopg `dict_row`). Optional timestamps are omitted when
null, as GoTrue's `omitempty` does; `phone` is `""` when unset; timestamps are RFC 3339 in UTC.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

# Optional user fields, in GoTrue's order, each omitted when null.
_OPTIONAL_TIMESTAMPS_1 = ("email_confirmed_at", "invited_at")
_OPTIONAL_TIMESTAMPS_2 = (
    "phone_confirmed_at",
    "confirmation_sent_at",
    "confirmed_at",
    "recovery_sent_at",
)
_OPTIONAL_TIMESTAMPS_3 = (
    "email_change_sent_at",
    "phone_change_sent_at",
    "reauthentication_sent_at",
    "last_sign_in_at",
)


GO_ZERO_TIME = "0001-01-01T00:00:00Z"


def rfc3339(value: dt.datetime) -> str:
    """`2026-01-02T03:04:05.123456Z`, trailing zeros of the fraction trimmed like Go's."""
    utc = value.astimezone(dt.UTC) if value.tzinfo else value.replace(tzinfo=dt.UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += f".{utc.microsecond:06d}".rstrip("0")
    return text + "Z"


def _required(row: dict[str, Any], name: str) -> str:
    """A timestamp GoTrue always has. Rows written straight into `auth.users` by SQL may leave it
    NULL: Go's zero time then, never a 500."""
    value = row.get(name)
    return rfc3339(value) if value is not None else GO_ZERO_TIME


def _maybe(out: dict[str, Any], row: dict[str, Any], names: tuple[str, ...]) -> None:
    for name in names:
        value = row.get(name)
        if value is not None:
            out[name] = rfc3339(value)


def identity_json(row: dict[str, Any]) -> dict[str, Any]:
    """One `auth.identities` row: `id` is the provider's id, `identity_id` the row's."""
    out: dict[str, Any] = {
        "identity_id": str(row["id"]),
        "id": row["provider_id"],
        "user_id": str(row["user_id"]),
        "identity_data": row["identity_data"] or {},
        "provider": row["provider"],
    }
    _maybe(out, row, ("last_sign_in_at",))
    out["created_at"] = _required(row, "created_at")
    out["updated_at"] = _required(row, "updated_at")
    if row.get("email"):
        out["email"] = row["email"]
    return out


def user_json(
    row: dict[str, Any],
    identities: list[dict[str, Any]],
    factors: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The bare user object `/user`, `/admin/users/{id}` and sessions carry; `factors` (their
    JSON, `factors.factor_json`) only when the user has any, as GoTrue's `omitempty`."""
    out: dict[str, Any] = {
        "id": str(row["id"]),
        "aud": row["aud"] or "",
        "role": row["role"] or "",
        "email": row["email"] or "",
    }
    _maybe(out, row, _OPTIONAL_TIMESTAMPS_1)
    out["phone"] = row["phone"] or ""
    _maybe(out, row, _OPTIONAL_TIMESTAMPS_2)
    if row.get("email_change"):
        out["new_email"] = row["email_change"]
    _maybe(out, row, _OPTIONAL_TIMESTAMPS_3)
    out["app_metadata"] = row["raw_app_meta_data"] or {}
    out["user_metadata"] = row["raw_user_meta_data"] or {}
    if factors:
        out["factors"] = factors
    out["identities"] = [identity_json(i) for i in identities]
    out["created_at"] = _required(row, "created_at")
    out["updated_at"] = _required(row, "updated_at")
    _maybe(out, row, ("banned_until", "deleted_at"))
    out["is_anonymous"] = bool(row["is_anonymous"])
    return out


def session_json(
    *,
    access_token: str,
    refresh_token: str,
    issued_at: int,
    expires_in: int,
    user: dict[str, Any],
) -> dict[str, Any]:
    """GoTrue's `AccessTokenResponse`."""
    return {
        "access_token": access_token,
        "token_type": "bearer",
        "expires_in": expires_in,
        "expires_at": issued_at + expires_in,
        "refresh_token": refresh_token,
        "user": user,
    }


def merge_metadata(current: dict[str, Any] | None, updates: dict[str, Any]) -> dict[str, Any]:
    """GoTrue's UpdateUserMetaData: keys are set one by one; a null value removes the key."""
    merged = dict(current or {})
    for key, value in updates.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged
