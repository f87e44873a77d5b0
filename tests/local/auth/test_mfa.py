"""TOTP MFA in the Auth stand-in over real HTTP: enrol, challenge, verify (aal2, `totp` in `amr`,
the session upgraded and kept so on refresh), unenrol, the user's `factors`, the admin factor
routes, and GoTrue's refusals (wrong code, reused or expired challenge, insufficient AAL)."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import psycopg
import pyotp
import pytest

from app.local.auth.config import AuthConfig, FactorSwitches
from app.local.stack import LocalStack
from tests.support.auth_standin import StandinFactory

PASSWORD = "correct horse battery"
V2024 = {"X-Supabase-Api-Version": "2024-01-01"}
ON = FactorSwitches(enroll_enabled=True, verify_enabled=True)


@dataclasses.dataclass
class Account:
    email: str
    access_token: str
    refresh_token: str


@pytest.fixture
def http(
    standin: StandinFactory, local_stack: LocalStack, project_config: AuthConfig
) -> Iterator[httpx.Client]:
    mfa = dataclasses.replace(project_config.mfa, totp=ON, web_authn=ON)
    server = standin(project_config.without_rate_limits().replace(mfa=mfa))
    headers = {"apikey": local_stack.keys.anon_key} | V2024
    with httpx.Client(base_url=f"{server.url}/auth/v1", headers=headers) as client:
        yield client


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _claims(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


def _sign_up(http: httpx.Client) -> Account:
    email = f"mfa-{uuid.uuid4().hex[:12]}@example.com"
    body = http.post("/signup", json={"email": email, "password": PASSWORD}).json()
    return Account(email, body["access_token"], body["refresh_token"])


def _sign_in(http: httpx.Client, email: str) -> Account:
    res = http.post("/token?grant_type=password", json={"email": email, "password": PASSWORD})
    assert res.status_code == 200, res.text
    body = res.json()
    return Account(email, body["access_token"], body["refresh_token"])


def _enroll(http: httpx.Client, account: Account, **extra: str) -> dict[str, Any]:
    res = http.post(
        "/factors", json={"factor_type": "totp", **extra}, headers=_bearer(account.access_token)
    )
    assert res.status_code == 200, res.text
    body: dict[str, Any] = res.json()
    return body


def _challenge(http: httpx.Client, account: Account, factor_id: str) -> str:
    res = http.post(f"/factors/{factor_id}/challenge", headers=_bearer(account.access_token))
    assert res.status_code == 200, res.text
    return str(res.json()["id"])


def _verify(
    http: httpx.Client, account: Account, factor_id: str, challenge_id: str, code: str
) -> httpx.Response:
    return http.post(
        f"/factors/{factor_id}/verify",
        json={"challenge_id": challenge_id, "code": code},
        headers=_bearer(account.access_token),
    )


def _step_up(http: httpx.Client, account: Account) -> tuple[Account, dict[str, Any]]:
    """Enrol a TOTP factor and verify it: the account's aal2 tokens and the factor."""
    factor = _enroll(http, account)
    challenge_id = _challenge(http, account, factor["id"])
    code = pyotp.TOTP(factor["totp"]["secret"]).now()
    res = _verify(http, account, factor["id"], challenge_id, code)
    assert res.status_code == 200, res.text
    body = res.json()
    return Account(account.email, body["access_token"], body["refresh_token"]), factor


def _error(res: httpx.Response) -> tuple[int, str, str]:
    body = res.json()
    return res.status_code, body["code"], body["message"]


# --- enrol ----------------------------------------------------------------------------------------
def test_mfa_enroll_totp_returns_a_secret_its_otpauth_uri_and_an_svg_qr_code(
    http: httpx.Client,
) -> None:
    account = _sign_up(http)

    body = _enroll(http, account, friendly_name="phone app")

    assert (body["type"], body["friendly_name"]) == ("totp", "phone app")
    secret = body["totp"]["secret"]
    assert len(secret) == 32  # 20 bytes, base32 without padding (pquerna/otp's default)
    uri = urlsplit(body["totp"]["uri"])
    assert (uri.scheme, uri.netloc, uri.path) == (
        "otpauth",
        "totp",
        f"/127.0.0.1:3000:{account.email}",
    )
    assert parse_qs(uri.query) == {
        "algorithm": ["SHA1"],
        "digits": ["6"],
        "issuer": ["127.0.0.1:3000"],
        "period": ["30"],
        "secret": [secret],
    }
    assert body["totp"]["qr_code"].startswith("<?xml")
    assert "<svg" in body["totp"]["qr_code"]


def test_mfa_enrolled_factor_is_listed_unverified_on_the_user(http: httpx.Client) -> None:
    account = _sign_up(http)
    factor = _enroll(http, account)

    user = http.get("/user", headers=_bearer(account.access_token)).json()

    assert [(f["id"], f["factor_type"], f["status"]) for f in user["factors"]] == [
        (factor["id"], "totp", "unverified")
    ]


def test_mfa_enroll_two_factors_with_one_friendly_name_is_422_name_conflict(
    http: httpx.Client,
) -> None:
    account = _sign_up(http)
    _enroll(http, account, friendly_name="same")

    res = http.post(
        "/factors",
        json={"factor_type": "totp", "friendly_name": "same"},
        headers=_bearer(account.access_token),
    )

    assert _error(res) == (
        422,
        "mfa_factor_name_conflict",
        'A factor with the friendly name "same" for this user already exists',
    )


def test_mfa_enroll_with_totp_switched_off_is_422_enroll_not_enabled(
    standin: StandinFactory, local_stack: LocalStack, project_config: AuthConfig
) -> None:
    server = standin(project_config.without_rate_limits())
    headers = {"apikey": local_stack.keys.anon_key} | V2024
    with httpx.Client(base_url=f"{server.url}/auth/v1", headers=headers) as off:
        account = _sign_up(off)
        res = off.post(
            "/factors", json={"factor_type": "totp"}, headers=_bearer(account.access_token)
        )

    assert _error(res) == (422, "mfa_totp_enroll_not_enabled", "MFA enroll is disabled for TOTP")


# --- verify ---------------------------------------------------------------------------------------
def test_mfa_verify_right_code_answers_aal2_tokens_with_totp_first_in_amr(
    http: httpx.Client,
) -> None:
    account = _sign_up(http)

    upgraded, factor = _step_up(http, account)

    claims = _claims(upgraded.access_token)
    assert claims["aal"] == "aal2"
    assert [entry["method"] for entry in claims["amr"]] == ["totp", "password"]
    assert claims["session_id"] == _claims(account.access_token)["session_id"]
    user = http.get("/user", headers=_bearer(upgraded.access_token)).json()
    assert [(f["id"], f["status"]) for f in user["factors"]] == [(factor["id"], "verified")]


def test_mfa_refresh_after_verify_keeps_aal2_and_the_totp_claim(http: httpx.Client) -> None:
    upgraded, _ = _step_up(http, _sign_up(http))

    res = http.post(
        "/token?grant_type=refresh_token", json={"refresh_token": upgraded.refresh_token}
    )

    claims = _claims(res.json()["access_token"])
    assert (claims["aal"], [e["method"] for e in claims["amr"]]) == ("aal2", ["totp", "password"])


def test_mfa_verify_wrong_code_is_422_and_the_session_stays_aal1(http: httpx.Client) -> None:
    account = _sign_up(http)
    factor = _enroll(http, account)
    challenge_id = _challenge(http, account, factor["id"])
    right = pyotp.TOTP(factor["totp"]["secret"]).now()
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"

    res = _verify(http, account, factor["id"], challenge_id, wrong)

    assert _error(res) == (422, "mfa_verification_failed", "Invalid TOTP code entered")
    refreshed = http.post(
        "/token?grant_type=refresh_token", json={"refresh_token": account.refresh_token}
    ).json()
    assert _claims(refreshed["access_token"])["aal"] == "aal1"


def test_mfa_verify_reusing_a_verified_challenge_is_422(http: httpx.Client) -> None:
    account = _sign_up(http)
    factor = _enroll(http, account)
    challenge_id = _challenge(http, account, factor["id"])
    code = pyotp.TOTP(factor["totp"]["secret"]).now()
    assert _verify(http, account, factor["id"], challenge_id, code).status_code == 200

    again = _verify(http, account, factor["id"], challenge_id, code)

    assert _error(again)[:2] == (422, "mfa_ip_address_mismatch")


def test_mfa_verify_an_expired_challenge_is_422_and_deletes_it(
    http: httpx.Client, local_stack: LocalStack
) -> None:
    account = _sign_up(http)
    factor = _enroll(http, account)
    challenge_id = _challenge(http, account, factor["id"])
    with psycopg.connect(local_stack.ctx.db_url, autocommit=True) as conn:
        conn.execute(
            "update auth.mfa_challenges set created_at = created_at - interval '301 seconds'"
            " where id = %s",
            (challenge_id,),
        )
    code = pyotp.TOTP(factor["totp"]["secret"]).now()

    res = _verify(http, account, factor["id"], challenge_id, code)

    assert _error(res)[:2] == (422, "mfa_challenge_expired")
    assert _error(_verify(http, account, factor["id"], challenge_id, code))[:2] == (
        422,
        "mfa_factor_not_found",
    )


def test_mfa_verify_ends_the_users_other_aal1_sessions(http: httpx.Client) -> None:
    account = _sign_up(http)
    other = _sign_in(http, account.email)

    _step_up(http, account)

    res = http.get("/user", headers=_bearer(other.access_token))
    assert _error(res)[:2] == (403, "session_not_found")


def test_mfa_password_sign_in_after_verify_is_aal1_with_the_verified_factor_listed(
    http: httpx.Client,
) -> None:
    account = _sign_up(http)
    _, factor = _step_up(http, account)

    res = http.post(
        "/token?grant_type=password", json={"email": account.email, "password": PASSWORD}
    )

    body = res.json()
    assert _claims(body["access_token"])["aal"] == "aal1"
    assert [(f["id"], f["status"]) for f in body["user"]["factors"]] == [(factor["id"], "verified")]


# --- AAL rules and unenrol ------------------------------------------------------------------------
def test_mfa_enroll_another_factor_from_an_aal1_session_is_403_insufficient_aal(
    http: httpx.Client,
) -> None:
    account = _sign_up(http)
    _step_up(http, account)
    aal1 = _sign_in(http, account.email)

    res = http.post(
        "/factors",
        json={"factor_type": "totp", "friendly_name": "second"},
        headers=_bearer(aal1.access_token),
    )

    assert _error(res) == (403, "insufficient_aal", "AAL2 required to enroll a new factor")


def test_mfa_unenroll_a_verified_factor_from_an_aal1_session_is_422_insufficient_aal(
    http: httpx.Client,
) -> None:
    account = _sign_up(http)
    _, factor = _step_up(http, account)
    aal1 = _sign_in(http, account.email)

    res = http.delete(f"/factors/{factor['id']}", headers=_bearer(aal1.access_token))

    assert _error(res) == (422, "insufficient_aal", "AAL2 required to unenroll verified factor")


def test_mfa_unenroll_from_aal2_removes_the_factor_and_downgrades_the_session(
    http: httpx.Client,
) -> None:
    upgraded, factor = _step_up(http, _sign_up(http))

    res = http.delete(f"/factors/{factor['id']}", headers=_bearer(upgraded.access_token))

    assert res.json() == {"id": factor["id"]}
    refreshed = http.post(
        "/token?grant_type=refresh_token", json={"refresh_token": upgraded.refresh_token}
    ).json()
    claims = _claims(refreshed["access_token"])
    assert (claims["aal"], [e["method"] for e in claims["amr"]]) == ("aal1", ["password"])
    assert "factors" not in refreshed["user"]


def test_mfa_challenge_of_another_users_factor_is_404_factor_not_found(
    http: httpx.Client,
) -> None:
    owner = _sign_up(http)
    factor = _enroll(http, owner)
    stranger = _sign_up(http)

    res = http.post(f"/factors/{factor['id']}/challenge", headers=_bearer(stranger.access_token))

    assert _error(res) == (404, "mfa_factor_not_found", "Factor not found")


# --- admin ----------------------------------------------------------------------------------------
def test_mfa_admin_lists_a_users_factors_and_deletes_one(
    http: httpx.Client, local_stack: LocalStack
) -> None:
    account = _sign_up(http)
    factor = _enroll(http, account)
    user_id = _claims(account.access_token)["sub"]
    admin = _bearer(local_stack.keys.service_role_key) | {
        "apikey": local_stack.keys.service_role_key
    }

    listed = http.get(f"/admin/users/{user_id}/factors", headers=admin).json()
    deleted = http.delete(f"/admin/users/{user_id}/factors/{factor['id']}", headers=admin)
    after = http.get(f"/admin/users/{user_id}/factors", headers=admin).json()

    assert [(f["id"], f["status"], f["factor_type"]) for f in listed] == [
        (factor["id"], "unverified", "totp")
    ]
    assert deleted.json()["id"] == factor["id"]
    assert after == []


def test_mfa_admin_soft_delete_of_a_user_deletes_its_factors(
    http: httpx.Client, local_stack: LocalStack
) -> None:
    account = _sign_up(http)
    _enroll(http, account)
    user_id = _claims(account.access_token)["sub"]
    admin = _bearer(local_stack.keys.service_role_key) | {
        "apikey": local_stack.keys.service_role_key
    }

    res = http.request(
        "DELETE", f"/admin/users/{user_id}", json={"should_soft_delete": True}, headers=admin
    )

    assert res.status_code == 200, res.text
    assert http.get(f"/admin/users/{user_id}/factors", headers=admin).json() == []


def test_mfa_admin_renames_a_factor_and_answers_it(
    http: httpx.Client, local_stack: LocalStack
) -> None:
    account = _sign_up(http)
    factor = _enroll(http, account, friendly_name="old")
    user_id = _claims(account.access_token)["sub"]
    admin = _bearer(local_stack.keys.service_role_key) | {
        "apikey": local_stack.keys.service_role_key
    }

    res = http.put(
        f"/admin/users/{user_id}/factors/{factor['id']}",
        json={"friendly_name": "new"},
        headers=admin,
    )

    assert (res.json()["id"], res.json()["friendly_name"]) == (factor["id"], "new")
    user = http.get("/user", headers=_bearer(account.access_token)).json()
    assert [f["friendly_name"] for f in user["factors"]] == ["new"]
