"""GoTrue's default-config "disabled" answers (status, error_code, message), through supabase-py
where it has the call and raw HTTP otherwise; and the gateway routing Kong does."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import jwt
import pytest
from supabase_auth.errors import AuthApiError

from app.local.server import ServerThread
from app.local.stack import LocalStack
from supabase import AsyncClient, AsyncClientOptions, acreate_client

PASSWORD = "correct horse battery"
V2024 = {"X-Supabase-Api-Version": "2024-01-01"}


@pytest.fixture
async def signed_in(
    stack_server: ServerThread, local_stack: LocalStack
) -> AsyncIterator[AsyncClient]:
    async with httpx.AsyncClient() as http:
        options = AsyncClientOptions(
            auto_refresh_token=False, persist_session=True, httpx_client=http
        )
        client = await acreate_client(stack_server.url, local_stack.keys.anon_key, options=options)
        email = f"off-{uuid.uuid4().hex[:12]}@example.com"
        await client.auth.sign_up({"email": email, "password": PASSWORD})
        yield client


@pytest.fixture
def raw(stack_server: ServerThread, local_stack: LocalStack) -> Iterator[httpx.Client]:
    headers = {"apikey": local_stack.keys.anon_key} | V2024
    with httpx.Client(base_url=f"{stack_server.url}/auth/v1", headers=headers) as client:
        yield client


def _error(res: httpx.Response) -> tuple[int, str, str]:
    body: dict[str, Any] = res.json()
    assert res.headers["x-sb-error-code"] == body["code"]
    return res.status_code, body["code"], body["message"]


# --- disabled answers ----------------------------------------------------------------------------
@pytest.mark.anyio
async def test_sso_is_404_saml_provider_disabled(signed_in: AsyncClient) -> None:
    with pytest.raises(AuthApiError) as err:
        await signed_in.auth.sign_in_with_sso({"domain": "example.com"})

    assert (err.value.status, err.value.code, err.value.message) == (
        404,
        "saml_provider_disabled",
        "SAML 2.0 is disabled",
    )


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/sso/saml/metadata"), ("POST", "/sso/saml/acs")]
)
def test_saml_routes_are_404_saml_provider_disabled(
    raw: httpx.Client, method: str, path: str
) -> None:
    assert _error(raw.request(method, path)) == (
        404,
        "saml_provider_disabled",
        "SAML 2.0 is disabled",
    )


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/factors"),
        ("POST", f"/factors/{uuid.uuid4()}/challenge"),
        ("POST", f"/factors/{uuid.uuid4()}/verify"),
        ("DELETE", f"/factors/{uuid.uuid4()}"),
        ("GET", "/user/identities/authorize"),
        ("DELETE", f"/user/identities/{uuid.uuid4()}"),
    ],
)
def test_session_routes_without_a_session_are_401_no_authorization(
    raw: httpx.Client, method: str, path: str
) -> None:
    assert _error(raw.request(method, path)) == (
        401,
        "no_authorization",
        "This endpoint requires a valid Bearer token",
    )


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("factor_type", "label"), [("totp", "TOTP"), ("phone", "Phone"), ("webauthn", "WebAuthn")]
)
async def test_mfa_enroll_with_a_session_is_422_enroll_not_enabled(
    signed_in: AsyncClient, factor_type: str, label: str
) -> None:
    params: dict[str, Any] = {"factor_type": factor_type}
    if factor_type == "phone":
        params["phone"] = "+15555550100"

    with pytest.raises(AuthApiError) as err:
        await signed_in.auth.mfa.enroll(params)  # type: ignore[arg-type]

    assert (err.value.status, err.value.code, err.value.message) == (
        422,
        f"mfa_{factor_type}_enroll_not_enabled",
        f"MFA enroll is disabled for {label}",
    )


@pytest.mark.anyio
async def test_mfa_challenge_of_an_unknown_factor_is_404_mfa_factor_not_found(
    signed_in: AsyncClient,
) -> None:
    with pytest.raises(AuthApiError) as err:
        await signed_in.auth.mfa.challenge({"factor_id": str(uuid.uuid4())})

    assert (err.value.status, err.value.code, err.value.message) == (
        404,
        "mfa_factor_not_found",
        "Factor not found",
    )


@pytest.mark.anyio
async def test_link_identity_with_a_session_is_404_manual_linking_disabled(
    signed_in: AsyncClient,
) -> None:
    with pytest.raises(AuthApiError) as err:
        await signed_in.auth.link_identity({"provider": "github"})

    assert (err.value.status, err.value.code, err.value.message) == (
        404,
        "manual_linking_disabled",
        "Manual linking is disabled",
    )


@pytest.mark.anyio
async def test_id_token_grant_for_google_is_400_provider_disabled(signed_in: AsyncClient) -> None:
    with pytest.raises(AuthApiError) as err:
        await signed_in.auth.sign_in_with_id_token({"provider": "google", "token": "x.y.z"})

    assert (err.value.status, err.value.code, err.value.message) == (
        400,
        "provider_disabled",
        'Provider (issuer "https://accounts.google.com") is not enabled',
    )


def test_id_token_grant_for_an_unknown_provider_is_400_not_allowed(raw: httpx.Client) -> None:
    res = raw.post("/token?grant_type=id_token", json={"provider": "acme", "id_token": "x.y.z"})

    assert _error(res) == (400, "validation_failed", 'Custom OIDC provider "acme" not allowed')


def test_web3_grant_is_422_web3_provider_disabled(raw: httpx.Client) -> None:
    res = raw.post("/token?grant_type=web3", json={"chain": "solana", "message": "m"})

    assert _error(res) == (422, "web3_provider_disabled", "Web3 provider is disabled")


# --- gateway as Kong routes it -------------------------------------------------------------------
def test_open_routes_need_no_apikey(stack_server: ServerThread) -> None:
    base = f"{stack_server.url}/auth/v1"
    with httpx.Client(base_url=base, headers=V2024, follow_redirects=False) as bare:
        verify = bare.get("/verify", params={"type": "magiclink", "token": "nope"})
        authorize = bare.get("/authorize", params={"provider": "github"})
        callback = bare.get("/callback")
        closed = bare.get("/user")

    assert verify.status_code == 303  # GoTrue redirects the browser with the error
    assert "error_code=otp_expired" in verify.headers["location"]
    assert _error(authorize) == (
        400,
        "validation_failed",
        "Unsupported provider: provider is not enabled",
    )
    assert _error(callback) == (400, "bad_oauth_callback", "OAuth state parameter missing")
    # GoTrue's own answer: the CLI's Kong checks no key on /auth/v1.
    assert _error(closed) == (
        401,
        "no_authorization",
        "This endpoint requires a valid Bearer token",
    )


def test_service_jwt_without_exp_is_accepted_by_the_admin_api(
    stack_server: ServerThread, local_stack: LocalStack
) -> None:
    forever = jwt.encode(
        {"role": "service_role", "iss": "supabase-demo"},
        local_stack.keys.jwt_secret,
        algorithm="HS256",
    )
    headers = {"apikey": local_stack.keys.service_role_key, "Authorization": f"Bearer {forever}"}

    res = httpx.get(f"{stack_server.url}/auth/v1/admin/users?per_page=1", headers=headers)

    assert res.status_code == 200, res.text
    assert "users" in res.json()


def test_expired_service_jwt_is_still_refused(
    stack_server: ServerThread, local_stack: LocalStack
) -> None:
    stale = jwt.encode(
        {"role": "service_role", "exp": int(time.time()) - 60},
        local_stack.keys.jwt_secret,
        algorithm="HS256",
    )
    headers = {
        "apikey": local_stack.keys.service_role_key,
        "Authorization": f"Bearer {stale}",
    } | V2024

    res = httpx.get(f"{stack_server.url}/auth/v1/admin/users", headers=headers)

    assert res.status_code == 403
    assert res.json()["code"] == "bad_jwt"


@pytest.mark.anyio
async def test_admin_mfa_lists_no_factors_and_deleting_one_is_404(
    stack_server: ServerThread, local_stack: LocalStack
) -> None:
    async with httpx.AsyncClient() as http:
        options = AsyncClientOptions(
            auto_refresh_token=False, persist_session=False, httpx_client=http
        )
        admin = await acreate_client(
            stack_server.url, local_stack.keys.service_role_key, options=options
        )
        made = await admin.auth.admin.create_user({"email": f"mfa-{uuid.uuid4().hex}@x.io"})

        listed = await admin.auth.admin.mfa.list_factors({"user_id": made.user.id})
        with pytest.raises(AuthApiError) as err:
            await admin.auth.admin.mfa.delete_factor(
                {"user_id": made.user.id, "id": str(uuid.uuid4())}
            )

    assert list(listed) == []  # supabase-py parses the bare JSON array GoTrue sends
    assert (err.value.status, err.value.code) == (404, "mfa_factor_not_found")


@pytest.mark.anyio
async def test_phone_otp_is_400_phone_provider_disabled(signed_in: AsyncClient) -> None:
    with pytest.raises(AuthApiError) as err:
        await signed_in.auth.sign_in_with_otp({"phone": "+15555550100"})

    assert (err.value.status, err.value.code, err.value.message) == (
        400,
        "phone_provider_disabled",
        "Unsupported phone provider",
    )
