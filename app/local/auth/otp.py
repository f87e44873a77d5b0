"""One-time codes, link tokens, redirects and PKCE flow state, as GoTrue makes them.

A mail carries one code (`otp`, `otp_length` digits) and one link whose `token` is
`sha224(email + otp)` in hex (GoTrue's `GenerateTokenHash`), prefixed `pkce_` when the request
carried a `code_challenge`. The hash is what `auth.users` keeps (`confirmation_token`,
`recovery_token`, `email_change_token_*`, `reauthentication_token`), with its `*_sent_at`;
verifying clears it (single use) and `otp_expiry` bounds it. PKCE flow state lives in
`auth.flow_state` (app/local/sql/auth_flows.sql) for 5 minutes, as GoTrue's default.
"""

from __future__ import annotations

import base64
import datetime as dt
import fnmatch
import hashlib
import hmac
import re
import secrets
import uuid
from typing import Any
from urllib.parse import urlencode, urlsplit

from psycopg import AsyncConnection

from app.local.auth.config import AuthConfig
from app.local.auth.errors import AuthApiError, bad_request, not_found, unprocessable
from app.local.auth.store import Row, fetch_one

PKCE_PREFIX = "pkce_"
FLOW_STATE_EXPIRY = dt.timedelta(seconds=300)  # GoTrue's defaultFlowStateExpiryDuration
_CHALLENGE = re.compile(r"^[a-zA-Z._~0-9-]+$")
INVALID_PKCE_PARAMS = "PKCE flow requires code_challenge_method and code_challenge"

# `type` of a verification -> GoTrue's AuthenticationMethod string (flow state, amr).
AUTH_METHODS = {
    "signup": "email/signup",
    "invite": "invite",
    "magiclink": "magiclink",
    "recovery": "recovery",
    "email_change": "email_change",
    "email": "email/signup",
}


def generate_otp(length: int) -> str:
    return "".join(secrets.choice("0123456789") for _ in range(length))


def token_hash(email: str, otp: str) -> str:
    return hashlib.sha224((email + otp).encode()).hexdigest()


def with_flow_prefix(token: str, pkce: bool) -> str:
    return PKCE_PREFIX + token if pkce else token


def otp_matches(actual: str, expected: str | None) -> bool:
    """GoTrue's isOtpValid without the expiry: equal, or equal once `pkce_`-prefixed."""
    if not expected or not actual:
        return False
    return hmac.compare_digest(actual, expected) or hmac.compare_digest(
        PKCE_PREFIX + actual, expected
    )


def expired(sent_at: dt.datetime | None, expiry_seconds: int) -> bool:
    if sent_at is None:
        return True
    return dt.datetime.now(dt.UTC) > sent_at + dt.timedelta(seconds=expiry_seconds)


def redirect_target(config: AuthConfig, requested: str | None) -> str:
    """GoTrue's GetReferrer: `redirect_to` when the site's host or an allow-list glob admits it,
    else the site URL."""
    if requested and _redirect_allowed(config, requested):
        return requested
    return config.site_url


def _redirect_allowed(config: AuthConfig, url: str) -> bool:
    try:
        wanted = urlsplit(url).hostname
        site = urlsplit(config.site_url).hostname
    except ValueError:
        return False
    if wanted and wanted == site:
        return True
    return any(fnmatch.fnmatchcase(url, pattern) for pattern in config.additional_redirect_urls)


def action_link(auth_url: str, token: str, verification_type: str, redirect_to: str) -> str:
    """The mail's link: `{auth}/verify?token=…&type=…&redirect_to=…` (the CLI's URL paths)."""
    query = urlencode({"token": token, "type": verification_type, "redirect_to": redirect_to})
    return f"{auth_url}/verify?{query}"


# --- PKCE ----------------------------------------------------------------------------------------
def pkce_requested(method: str, challenge: str) -> bool:
    """GoTrue's validatePKCEParams; True when the request starts a PKCE flow."""
    if bool(method) != bool(challenge):
        raise bad_request("validation_failed", INVALID_PKCE_PARAMS)
    if not challenge:
        return False
    if not 43 <= len(challenge) <= 128:
        raise bad_request(
            "validation_failed", "code challenge has to be between 43 and 128 characters"
        )
    if not _CHALLENGE.match(challenge):
        raise bad_request(
            "validation_failed",
            "code challenge can only contain alphanumeric characters, hyphens, periods,"
            " underscores and tildes",
        )
    if method.lower() not in ("s256", "plain"):
        raise bad_request("validation_failed", f'unsupported code_challenge method "{method}"')
    return True


async def create_flow_state(
    conn: AsyncConnection[Any],
    *,
    user_id: uuid.UUID,
    method: str,
    challenge: str,
    authentication_method: str,
) -> None:
    await fetch_one(
        conn,
        "insert into auth.flow_state (id, user_id, auth_code, code_challenge_method,"
        " code_challenge, provider_type, authentication_method, created_at, updated_at)"
        " values (%s, %s, %s, %s, %s, %s, %s, now(), now()) returning id",
        (
            uuid.uuid4(),
            user_id,
            str(uuid.uuid4()),
            method.lower(),
            challenge,
            authentication_method,
            authentication_method,
        ),
    )


async def issue_auth_code(
    conn: AsyncConnection[Any], user_id: uuid.UUID, authentication_method: str
) -> str:
    """GoTrue's issueAuthCode: the user's latest flow of that method hands out its code."""
    row = await fetch_one(
        conn,
        "update auth.flow_state set auth_code_issued_at = now(), updated_at = now()"
        " where id = (select id from auth.flow_state where user_id = %s"
        " and authentication_method = %s order by created_at desc, id desc limit 1)"
        " returning auth_code",
        (user_id, authentication_method),
    )
    if row is None:
        raise unprocessable("flow_state_not_found", "No valid flow state found for user.")
    code: str = row["auth_code"]
    return code


async def take_flow_state(conn: AsyncConnection[Any], auth_code: str, verifier: str) -> Row:
    """Spend the flow state of `auth_code` (deleted: single use) once the verifier matches."""
    row = await fetch_one(
        conn,
        "select *, coalesce(case when authentication_method = 'magiclink'"
        " then auth_code_issued_at end, created_at) + %s < now() as is_expired"
        " from auth.flow_state where auth_code = %s for update",
        (FLOW_STATE_EXPIRY, auth_code),
    )
    if row is None or row["user_id"] is None:
        raise not_found("flow_state_not_found", "invalid flow state, no valid flow state found")
    if row["is_expired"]:
        raise unprocessable("flow_state_expired", "invalid flow state, flow state has expired")
    if not _verifier_matches(row["code_challenge_method"], row["code_challenge"], verifier):
        raise bad_request(
            "bad_code_verifier", "code challenge does not match previously saved code verifier"
        )
    await fetch_one(conn, "delete from auth.flow_state where id = %s returning id", (row["id"],))
    return row


def _verifier_matches(method: str, challenge: str, verifier: str) -> bool:
    if method == "s256":
        digest = hashlib.sha256(verifier.encode()).digest()
        computed = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        return hmac.compare_digest(computed, challenge)
    return hmac.compare_digest(verifier, challenge)


def frequency_error(sent_at: dt.datetime | None, max_frequency: float) -> AuthApiError | None:
    """GoTrue's validateSentWithinFrequencyLimit (`[auth.email] max_frequency` per user)."""
    if sent_at is None:
        return None
    until = sent_at + dt.timedelta(seconds=max_frequency)
    left = (until - dt.datetime.now(dt.UTC)).total_seconds()
    if left <= 0:
        return None
    return AuthApiError(
        429,
        "over_email_send_rate_limit",
        f"For security purposes, you can only request this after {int(left)} seconds.",
    )
