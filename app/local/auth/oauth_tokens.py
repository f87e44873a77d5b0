"""The tokens the OAuth 2.1 server hands a client, as GoTrue v2.189's token service makes them.

An access token of a client's session is the user's usual one plus `client_id` and `scope`
(the granted scopes), so a resource server can tell whose app holds it. With `openid` granted,
the code exchange also returns an OIDC ID token: audience the client, one hour, `auth_time`
the sign-in, `nonce` from the authorization request, and the email, phone and profile claims
its scopes allow. (GoTrue refuses to sign one with an HS256 key; the stand-in signs only with
ES256 or RS256.)
"""

from __future__ import annotations

import time
from typing import Any

import jwt

from app.local.auth import store
from app.local.keys import LocalKeys

ID_TOKEN_SECONDS = 3600


def bind_to_client(keys: LocalKeys, access_token: str, client_id: str, scope: str) -> str:
    """`access_token` re-signed with the client's `client_id` and `scope` claims."""
    claims = jwt.decode(access_token, options={"verify_signature": False})
    claims["client_id"] = client_id
    if scope:
        claims["scope"] = scope
    return keys.sign_access_token(claims)


def id_token(
    keys: LocalKeys,
    *,
    issuer: str,
    user: store.Row,
    client_id: str,
    scopes: list[str],
    nonce: str,
) -> str:
    now = int(time.time())
    signed_in = user["last_sign_in_at"]
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": str(user["id"]),
        "aud": [client_id],
        "exp": now + ID_TOKEN_SECONDS,
        "iat": now,
        "auth_time": int(signed_in.timestamp()) if signed_in else now,
        "email_verified": False,
        "phone_number_verified": False,
        "client_id": client_id,
    }
    if nonce:
        claims["nonce"] = nonce
    if "email" in scopes:
        claims["email_verified"] = user["confirmed_at"] is not None
        if user["email"]:
            claims["email"] = user["email"]
    if "phone" in scopes:
        claims["phone_number_verified"] = user["phone_confirmed_at"] is not None
        if user["phone"]:
            claims["phone_number"] = user["phone"]
    if "profile" in scopes:
        claims |= profile_claims(user)
    return keys.sign_access_token(claims)


def profile_claims(user: store.Row) -> dict[str, Any]:
    """OIDC's `profile` claims from the user's metadata, with GoTrue's fallbacks."""
    meta: dict[str, Any] = user["raw_user_meta_data"] or {}
    claims: dict[str, Any] = {}
    name = _text(meta, "name") or (user["email"] or "")
    picture = _text(meta, "picture") or _text(meta, "avatar_url")
    username = _text(meta, "preferred_username") or _text(meta, "username")
    for key, value in (("name", name), ("picture", picture), ("preferred_username", username)):
        if value:
            claims[key] = value
    if user["updated_at"] is not None:
        claims["updated_at"] = int(user["updated_at"].timestamp())
    return claims


def _text(meta: dict[str, Any], key: str) -> str:
    value = meta.get(key)
    return value if isinstance(value, str) else ""
