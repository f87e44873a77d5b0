"""The email flows end to end through supabase-py, reading the local mail sink: magic link and
email OTP, recovery, invites, admin generate_link, resend, reauthenticate, email change and PKCE —
each with its expired, reused and wrong-type tokens answered with GoTrue's error code.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import psycopg
import pytest
from supabase_auth import AsyncMemoryStorage
from supabase_auth.errors import AuthApiError

from app.local.auth.config import AuthConfig, EmailConfig, RateLimits
from app.local.auth.mail import Mail, Mailbox, mailbox_of
from app.local.server import ServerThread
from app.local.stack import LocalStack
from supabase import AsyncClient, AsyncClientOptions, acreate_client
from tests.support.auth_standin import StandinFactory

PASSWORD = "correct horse battery"
NEW_PASSWORD = "battery staple horse"
SITE = "http://127.0.0.1:3000"


def new_email() -> str:
    return f"flow-{uuid.uuid4().hex[:12]}@example.com"


async def _client(
    url: str, key: str, http: httpx.AsyncClient, *, pkce: bool = False
) -> AsyncClient:
    options = AsyncClientOptions(
        auto_refresh_token=False,
        persist_session=True,
        httpx_client=http,
        flow_type="pkce" if pkce else "implicit",
        storage=AsyncMemoryStorage(),
    )
    return await acreate_client(url, key, options=options)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
async def anon(
    stack_server: ServerThread, local_stack: LocalStack, http: httpx.AsyncClient
) -> AsyncClient:
    return await _client(stack_server.url, local_stack.keys.anon_key, http)


@pytest.fixture
async def pkce_client(
    stack_server: ServerThread, local_stack: LocalStack, http: httpx.AsyncClient
) -> AsyncClient:
    return await _client(stack_server.url, local_stack.keys.anon_key, http, pkce=True)


@pytest.fixture
async def admin(
    stack_server: ServerThread, local_stack: LocalStack, http: httpx.AsyncClient
) -> AsyncClient:
    return await _client(stack_server.url, local_stack.keys.service_role_key, http)


@pytest.fixture
def mailbox(local_stack: LocalStack, stack_server: ServerThread) -> Mailbox:
    return mailbox_of(local_stack.ctx)


def _only_mail(box: Mailbox, email: str, kind: str) -> Mail:
    mails = [m for m in box.to(email) if m.kind == kind]
    assert len(mails) == 1, [(m.kind, m.to) for m in box.to(email)]
    return mails[0]


def _follow(url: str) -> httpx.Response:
    """Open a mail's link as a browser would, stopping at the redirect."""
    return httpx.get(url, follow_redirects=False)


def _fragment(location: str) -> dict[str, str]:
    return {
        k: v[0] for k, v in parse_qs(urlsplit(location).fragment, keep_blank_values=True).items()
    }


def _backdate(local_stack: LocalStack, email: str, column: str, seconds: int) -> None:
    assert column in ("confirmation_sent_at", "recovery_sent_at", "email_change_sent_at")
    with psycopg.connect(local_stack.ctx.db_url, autocommit=True) as conn:
        conn.execute(
            f"update auth.users set {column} = {column} - make_interval(secs => %s)"  # noqa: S608
            " where email = %s",
            (seconds, email),
        )


# --- magic link and email OTP --------------------------------------------------------------------
@pytest.mark.anyio
async def test_magic_link_for_a_new_email_signs_up_and_the_link_signs_in_once(
    anon: AsyncClient, mailbox: Mailbox
) -> None:
    email = new_email()

    await anon.auth.sign_in_with_otp({"email": email})

    mail = _only_mail(mailbox, email, "magiclink")
    assert mail.otp.isdigit() and len(mail.otp) == 6
    first = _follow(mail.link)
    assert first.status_code == 303
    landed = _fragment(first.headers["location"])
    assert first.headers["location"].startswith(SITE + "#")
    assert landed["type"] == "magiclink" and landed["token_type"] == "bearer"
    me = await anon.auth.get_user(landed["access_token"])
    assert me is not None and me.user.email == email
    assert me.user.email_confirmed_at is not None

    again = _fragment(_follow(mail.link).headers["location"])
    assert again["error_code"] == "otp_expired"
    assert again["error"] == "access_denied"
    assert again["error_description"] == "Email link is invalid or has expired"


@pytest.mark.anyio
async def test_email_otp_code_verifies_once_then_is_otp_expired(
    anon: AsyncClient, mailbox: Mailbox
) -> None:
    email = new_email()
    await anon.auth.sign_up({"email": email, "password": PASSWORD})

    await anon.auth.sign_in_with_otp({"email": email})
    code = _only_mail(mailbox, email, "magiclink").otp

    res = await anon.auth.verify_otp({"email": email, "token": code, "type": "email"})
    assert res.session is not None and res.user is not None and res.user.email == email
    with pytest.raises(AuthApiError) as reused:
        await anon.auth.verify_otp({"email": email, "token": code, "type": "email"})
    assert (reused.value.status, reused.value.code) == (403, "otp_expired")
    assert reused.value.message == "Token has expired or is invalid"


@pytest.mark.anyio
async def test_magiclink_code_with_the_wrong_type_is_otp_expired(
    anon: AsyncClient, mailbox: Mailbox
) -> None:
    email = new_email()
    await anon.auth.sign_in_with_otp({"email": email})
    code = _only_mail(mailbox, email, "magiclink").otp

    with pytest.raises(AuthApiError) as wrong:
        await anon.auth.verify_otp({"email": email, "token": code, "type": "signup"})

    assert (wrong.value.status, wrong.value.code) == (403, "otp_expired")
    res = await anon.auth.verify_otp({"email": email, "token": code, "type": "magiclink"})
    assert res.session is not None  # the failed try did not spend it


@pytest.mark.anyio
async def test_magic_link_past_otp_expiry_is_otp_expired(
    anon: AsyncClient, mailbox: Mailbox, local_stack: LocalStack
) -> None:
    email = new_email()
    await anon.auth.sign_in_with_otp({"email": email})
    mail = _only_mail(mailbox, email, "magiclink")
    _backdate(local_stack, email, "recovery_sent_at", 3601)

    with pytest.raises(AuthApiError) as code:
        await anon.auth.verify_otp({"email": email, "token": mail.otp, "type": "email"})
    with pytest.raises(AuthApiError) as link:
        await anon.auth.verify_otp({"token_hash": mail.token_hash, "type": "magiclink"})

    assert (code.value.status, code.value.code) == (403, "otp_expired")
    assert (link.value.status, link.value.code) == (403, "otp_expired")
    assert link.value.message == "Email link is invalid or has expired"


@pytest.mark.anyio
async def test_otp_without_create_user_for_unknown_email_is_422_otp_disabled(
    anon: AsyncClient, mailbox: Mailbox
) -> None:
    email = new_email()

    with pytest.raises(AuthApiError) as err:
        await anon.auth.sign_in_with_otp({"email": email, "options": {"should_create_user": False}})

    assert (err.value.status, err.value.code) == (422, "otp_disabled")
    assert err.value.message == "Signups not allowed for otp"
    assert mailbox.to(email) == []


@pytest.mark.anyio
async def test_verify_otp_for_an_unknown_email_or_phone_is_403_otp_expired(
    anon: AsyncClient,
) -> None:
    with pytest.raises(AuthApiError) as email:
        await anon.auth.verify_otp({"email": new_email(), "token": "123456", "type": "email"})
    with pytest.raises(AuthApiError) as phone:
        await anon.auth.verify_otp({"phone": "+15555550100", "token": "123456", "type": "sms"})

    for err in (email, phone):
        assert (err.value.status, err.value.code) == (403, "otp_expired")
        assert err.value.message == "Token has expired or is invalid"


# --- recovery ------------------------------------------------------------------------------------
@pytest.mark.anyio
async def test_recovery_code_then_new_password_signs_in(
    anon: AsyncClient, mailbox: Mailbox
) -> None:
    email = new_email()
    await anon.auth.sign_up({"email": email, "password": PASSWORD})

    await anon.auth.reset_password_for_email(email, {"redirect_to": f"{SITE}/reset"})
    mail = _only_mail(mailbox, email, "recovery")
    assert mail.redirect_to == f"{SITE}/reset"
    res = await anon.auth.verify_otp({"token_hash": mail.token_hash, "type": "recovery"})
    assert res.session is not None
    await anon.auth.update_user({"password": NEW_PASSWORD})

    signed = await anon.auth.sign_in_with_password({"email": email, "password": NEW_PASSWORD})
    assert signed.session is not None
    with pytest.raises(AuthApiError) as old:
        await anon.auth.sign_in_with_password({"email": email, "password": PASSWORD})
    assert old.value.code == "invalid_credentials"
    with pytest.raises(AuthApiError) as reused:
        await anon.auth.verify_otp({"token_hash": mail.token_hash, "type": "recovery"})
    assert (reused.value.status, reused.value.code) == (403, "otp_expired")


@pytest.mark.anyio
async def test_recovery_link_redirects_to_the_allowed_redirect_with_a_session(
    anon: AsyncClient, mailbox: Mailbox
) -> None:
    email = new_email()
    await anon.auth.sign_up({"email": email, "password": PASSWORD})
    await anon.auth.reset_password_for_email(email, {"redirect_to": f"{SITE}/reset"})

    res = _follow(_only_mail(mailbox, email, "recovery").link)

    assert res.status_code == 303
    assert res.headers["location"].startswith(f"{SITE}/reset#")
    assert _fragment(res.headers["location"])["type"] == "recovery"


@pytest.mark.anyio
async def test_recovery_for_unknown_email_answers_the_same_and_sends_nothing(
    anon: AsyncClient, mailbox: Mailbox
) -> None:
    email = new_email()

    await anon.auth.reset_password_for_email(email)

    assert mailbox.to(email) == []


@pytest.mark.anyio
async def test_redirect_to_a_foreign_host_falls_back_to_the_site_url(
    anon: AsyncClient, mailbox: Mailbox
) -> None:
    email = new_email()
    await anon.auth.sign_up({"email": email, "password": PASSWORD})

    await anon.auth.reset_password_for_email(email, {"redirect_to": "https://evil.example/x"})

    assert _only_mail(mailbox, email, "recovery").redirect_to == SITE


# --- invites -------------------------------------------------------------------------------------
@pytest.mark.anyio
async def test_invite_by_email_then_the_code_signs_in_and_sets_a_password(
    admin: AsyncClient, anon: AsyncClient, mailbox: Mailbox
) -> None:
    email = new_email()

    invited = await admin.auth.admin.invite_user_by_email(email, {"data": {"team": "a"}})

    assert invited.user.email == email and invited.user.invited_at is not None
    assert invited.user.user_metadata == {"team": "a"}
    mail = _only_mail(mailbox, email, "invite")
    res = await anon.auth.verify_otp({"token_hash": mail.token_hash, "type": "invite"})
    assert res.session is not None and res.user is not None
    assert res.user.email_confirmed_at is not None
    await anon.auth.update_user({"password": NEW_PASSWORD})
    signed = await anon.auth.sign_in_with_password({"email": email, "password": NEW_PASSWORD})
    assert signed.session is not None


@pytest.mark.anyio
async def test_invite_of_a_confirmed_email_is_422_email_exists(
    admin: AsyncClient, anon: AsyncClient
) -> None:
    email = new_email()
    await anon.auth.sign_up({"email": email, "password": PASSWORD})

    with pytest.raises(AuthApiError) as err:
        await admin.auth.admin.invite_user_by_email(email)

    assert (err.value.status, err.value.code) == (422, "email_exists")


@pytest.mark.anyio
async def test_invite_needs_the_service_role(anon: AsyncClient) -> None:
    with pytest.raises(AuthApiError) as err:
        await anon.auth.admin.invite_user_by_email(new_email())

    assert err.value.status in (401, 403)


# --- admin generate_link -------------------------------------------------------------------------
@pytest.mark.anyio
@pytest.mark.parametrize("link_type", ["signup", "magiclink", "recovery", "invite"])
async def test_generate_link_each_type_verifies_once_and_sends_no_mail(
    admin: AsyncClient, anon: AsyncClient, mailbox: Mailbox, link_type: str
) -> None:
    email = new_email()
    if link_type == "recovery":
        await anon.auth.sign_up({"email": email, "password": PASSWORD})
    params: dict[str, Any] = {"type": link_type, "email": email}
    if link_type == "signup":
        params["password"] = PASSWORD

    link = await admin.auth.admin.generate_link(params)  # type: ignore[arg-type]

    props = link.properties
    assert props.email_otp.isdigit()
    assert props.verification_type in (link_type, "signup")
    assert f"type={'signup' if link_type == 'magiclink' else link_type}" in props.action_link
    assert mailbox.to(email) == []
    verify_type = "signup" if props.verification_type == "signup" else link_type
    res = await anon.auth.verify_otp({"token_hash": props.hashed_token, "type": verify_type})  # type: ignore[typeddict-item]
    assert res.session is not None
    with pytest.raises(AuthApiError) as reused:
        await anon.auth.verify_otp({"token_hash": props.hashed_token, "type": verify_type})  # type: ignore[typeddict-item]
    assert reused.value.code == "otp_expired"


@pytest.mark.anyio
async def test_generate_link_email_change_new_applies_the_new_email(
    admin: AsyncClient, anon: AsyncClient
) -> None:
    email, new = new_email(), new_email()
    await anon.auth.sign_up({"email": email, "password": PASSWORD})

    link = await admin.auth.admin.generate_link(
        {"type": "email_change_new", "email": email, "new_email": new}
    )
    landed = _follow(link.properties.action_link)

    assert landed.status_code == 303
    token = _fragment(landed.headers["location"])["access_token"]
    me = await anon.auth.get_user(token)
    assert me is not None and me.user.email == new


@pytest.mark.anyio
async def test_generate_link_recovery_for_unknown_email_is_404_user_not_found(
    admin: AsyncClient,
) -> None:
    with pytest.raises(AuthApiError) as err:
        await admin.auth.admin.generate_link({"type": "recovery", "email": new_email()})

    assert (err.value.status, err.value.code) == (404, "user_not_found")
    assert err.value.message == "User with this email not found"


# --- PKCE ----------------------------------------------------------------------------------------
@pytest.mark.anyio
async def test_pkce_magic_link_gives_a_code_exchanged_once_for_a_session(
    pkce_client: AsyncClient, mailbox: Mailbox
) -> None:
    email = new_email()
    await pkce_client.auth.sign_in_with_otp({"email": email})
    mail = _only_mail(mailbox, email, "magiclink")
    assert mail.token_hash.startswith("pkce_")

    landed = _follow(mail.link)
    assert landed.status_code == 303
    code = parse_qs(urlsplit(landed.headers["location"]).query)["code"][0]
    res = await pkce_client.auth.exchange_code_for_session({"auth_code": code})  # type: ignore[typeddict-item]

    assert res.session is not None and res.user is not None and res.user.email == email
    with pytest.raises(AuthApiError) as reused:
        await pkce_client.auth.exchange_code_for_session(
            {"auth_code": code, "code_verifier": "x" * 43}  # type: ignore[typeddict-item]
        )
    assert (reused.value.status, reused.value.code) == (404, "flow_state_not_found")


@pytest.mark.anyio
async def test_pkce_recovery_code_with_a_wrong_verifier_is_bad_code_verifier(
    pkce_client: AsyncClient, anon: AsyncClient, mailbox: Mailbox
) -> None:
    email = new_email()
    await anon.auth.sign_up({"email": email, "password": PASSWORD})
    await pkce_client.auth.reset_password_for_email(email)
    landed = _follow(_only_mail(mailbox, email, "recovery").link)
    code = parse_qs(urlsplit(landed.headers["location"]).query)["code"][0]

    with pytest.raises(AuthApiError) as wrong:
        await pkce_client.auth.exchange_code_for_session(
            {"auth_code": code, "code_verifier": "y" * 43}  # type: ignore[typeddict-item]
        )
    res = await pkce_client.auth.exchange_code_for_session({"auth_code": code})  # type: ignore[typeddict-item]

    assert (wrong.value.status, wrong.value.code) == (400, "bad_code_verifier")
    assert res.session is not None


@pytest.mark.anyio
async def test_pkce_code_past_flow_expiry_is_flow_state_expired(
    pkce_client: AsyncClient, mailbox: Mailbox, local_stack: LocalStack
) -> None:
    email = new_email()
    await pkce_client.auth.sign_in_with_otp({"email": email})
    landed = _follow(_only_mail(mailbox, email, "magiclink").link)
    code = parse_qs(urlsplit(landed.headers["location"]).query)["code"][0]
    with psycopg.connect(local_stack.ctx.db_url, autocommit=True) as conn:
        conn.execute(
            "update auth.flow_state set created_at = created_at - interval '10 minutes',"
            " auth_code_issued_at = auth_code_issued_at - interval '10 minutes'"
            " where auth_code = %s",
            (code,),
        )

    with pytest.raises(AuthApiError) as err:
        await pkce_client.auth.exchange_code_for_session({"auth_code": code})  # type: ignore[typeddict-item]

    assert (err.value.status, err.value.code) == (422, "flow_state_expired")


# --- mail sink over HTTP -------------------------------------------------------------------------
@pytest.mark.anyio
async def test_mail_sink_serves_mailpit_shaped_messages_with_link_and_code(
    anon: AsyncClient, stack_server: ServerThread, mailbox: Mailbox
) -> None:
    email = new_email()
    await anon.auth.sign_in_with_otp({"email": email})
    mail = _only_mail(mailbox, email, "magiclink")

    async with httpx.AsyncClient(base_url=f"{stack_server.url}/mail") as http:
        found = (await http.get("/api/v1/search", params={"query": f"to:{email}"})).json()
        one = (await http.get(f"/api/v1/message/{found['messages'][0]['ID']}")).json()
        page = await http.get("/")

    assert found["messages_count"] == 1
    summary = found["messages"][0]
    assert summary["To"] == [{"Name": "", "Address": email}]
    assert summary["Subject"] == "Your sign-in link"
    assert mail.link in one["Text"] and mail.otp in one["Text"]
    assert mail.link.replace("&", "&amp;") in one["HTML"]
    assert email in page.text


# --- with confirmations on (a private stand-in) --------------------------------------------------
def _confirming(config: AuthConfig, **email: Any) -> AuthConfig:
    base = config.without_rate_limits()
    values = {"enable_confirmations": True} | email
    return base.replace(email=EmailConfig(**values))


@pytest.mark.anyio
async def test_signup_with_confirmations_mails_a_link_that_confirms_and_signs_in(
    standin: StandinFactory,
    local_stack: LocalStack,
    http: httpx.AsyncClient,
    project_config: AuthConfig,
) -> None:
    server = standin(_confirming(project_config, max_frequency_seconds=0))
    client = await _client(server.url, local_stack.keys.anon_key, http)
    box = mailbox_of(server.ctx)  # type: ignore[attr-defined]
    email = new_email()

    res = await client.auth.sign_up({"email": email, "password": PASSWORD})
    assert res.session is None and res.user is not None and res.user.email_confirmed_at is None
    with pytest.raises(AuthApiError) as unconfirmed:
        await client.auth.sign_in_with_password({"email": email, "password": PASSWORD})
    assert unconfirmed.value.code == "email_not_confirmed"
    first = _only_mail(box, email, "signup")
    await client.auth.resend({"type": "signup", "email": email})
    second = box.latest(email, "signup")
    assert second is not None and second.id != first.id

    with pytest.raises(AuthApiError) as stale:
        await client.auth.verify_otp({"email": email, "token": first.otp, "type": "signup"})
    assert stale.value.code == "otp_expired"  # the resend replaced it
    confirmed = await client.auth.verify_otp(
        {"email": email, "token": second.otp, "type": "signup"}
    )
    assert confirmed.session is not None
    assert (await client.auth.sign_in_with_password({"email": email, "password": PASSWORD})).session


@pytest.mark.anyio
async def test_email_change_with_confirmations_needs_both_addresses(
    standin: StandinFactory,
    local_stack: LocalStack,
    http: httpx.AsyncClient,
    project_config: AuthConfig,
) -> None:
    server = standin(_confirming(project_config, max_frequency_seconds=0))
    client = await _client(server.url, local_stack.keys.anon_key, http)
    admin = await _client(server.url, local_stack.keys.service_role_key, http)
    box = mailbox_of(server.ctx)  # type: ignore[attr-defined]
    email, new = new_email(), new_email()
    await admin.auth.admin.create_user(
        {"email": email, "password": PASSWORD, "email_confirm": True}
    )
    await client.auth.sign_in_with_password({"email": email, "password": PASSWORD})

    changed = await client.auth.update_user({"email": new})
    assert changed.user.new_email == new and changed.user.email == email
    to_new, to_current = (
        _only_mail(box, new, "email_change"),
        _only_mail(box, email, "email_change"),
    )
    half = await client.auth.verify_otp({"token_hash": to_new.token_hash, "type": "email_change"})
    assert half.session is None  # "Confirmation link accepted…": one more to go
    done = await client.auth.verify_otp(
        {"token_hash": to_current.token_hash, "type": "email_change"}
    )

    assert done.user is not None and done.user.email == new


@pytest.mark.anyio
async def test_reauthenticate_nonce_allows_one_password_change(
    standin: StandinFactory,
    local_stack: LocalStack,
    http: httpx.AsyncClient,
    project_config: AuthConfig,
) -> None:
    config = project_config.without_rate_limits()
    server = standin(config.replace(email=EmailConfig(secure_password_change=True)))
    client = await _client(server.url, local_stack.keys.anon_key, http)
    box = mailbox_of(server.ctx)  # type: ignore[attr-defined]
    email = new_email()
    await client.auth.sign_up({"email": email, "password": PASSWORD})

    with pytest.raises(AuthApiError) as needed:
        await client.auth.update_user({"password": NEW_PASSWORD})
    await client.auth.reauthenticate()
    nonce = _only_mail(box, email, "reauthentication").otp
    await client.auth.update_user({"password": NEW_PASSWORD, "nonce": nonce})
    with pytest.raises(AuthApiError) as reused:
        await client.auth.update_user({"password": PASSWORD, "nonce": nonce})

    assert (needed.value.status, needed.value.code) == (400, "reauthentication_needed")
    assert (reused.value.status, reused.value.code) == (422, "reauthentication_not_valid")
    assert (
        await client.auth.sign_in_with_password({"email": email, "password": NEW_PASSWORD})
    ).session


# --- rate limits on mail and verification --------------------------------------------------------
@pytest.mark.anyio
async def test_second_mail_within_max_frequency_is_429_over_email_send_rate_limit(
    standin: StandinFactory,
    local_stack: LocalStack,
    http: httpx.AsyncClient,
    project_config: AuthConfig,
) -> None:
    config = project_config.without_rate_limits()
    server = standin(config.replace(email=EmailConfig(max_frequency_seconds=60)))
    client = await _client(server.url, local_stack.keys.anon_key, http)
    email = new_email()
    await client.auth.sign_up({"email": email, "password": PASSWORD})
    await client.auth.reset_password_for_email(email)

    with pytest.raises(AuthApiError) as err:
        await client.auth.reset_password_for_email(email)

    assert (err.value.status, err.value.code) == (429, "over_email_send_rate_limit")
    assert err.value.message.startswith("For security purposes, you can only request this after")


@pytest.mark.anyio
async def test_email_sent_budget_is_project_wide_429(
    standin: StandinFactory,
    local_stack: LocalStack,
    http: httpx.AsyncClient,
    project_config: AuthConfig,
) -> None:
    server = standin(project_config.replace(rate_limit=RateLimits(email_sent=2)))
    client = await _client(server.url, local_stack.keys.anon_key, http)
    for _ in range(2):
        await client.auth.sign_in_with_otp({"email": new_email()})

    with pytest.raises(AuthApiError) as err:
        await client.auth.sign_in_with_otp({"email": new_email()})

    assert (err.value.status, err.value.code) == (429, "over_email_send_rate_limit")
    assert err.value.message == "Email rate limit exceeded"


@pytest.mark.anyio
async def test_token_verifications_budget_is_429_over_request_rate_limit(
    standin: StandinFactory,
    local_stack: LocalStack,
    http: httpx.AsyncClient,
    project_config: AuthConfig,
) -> None:
    limits = RateLimits(token_verifications=3, header="X-Forwarded-For")
    server = standin(project_config.replace(rate_limit=limits))
    http.headers["X-Forwarded-For"] = "203.0.113.9"  # GoTrue limits per address only with it
    client = await _client(server.url, local_stack.keys.anon_key, http)
    for _ in range(3):
        with pytest.raises(AuthApiError) as wrong:
            await client.auth.verify_otp({"email": new_email(), "token": "000000", "type": "email"})
        assert wrong.value.code == "otp_expired"

    with pytest.raises(AuthApiError) as err:
        await client.auth.verify_otp({"email": new_email(), "token": "000000", "type": "email"})

    assert (err.value.status, err.value.code) == (429, "over_request_rate_limit")


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("link_type", "verify_type", "column"),
    [
        ("signup", "signup", "confirmation_sent_at"),
        ("invite", "invite", "confirmation_sent_at"),
        ("magiclink", "magiclink", "recovery_sent_at"),
        ("recovery", "recovery", "recovery_sent_at"),
        ("email_change_new", "email_change", "email_change_sent_at"),
    ],
)
async def test_every_link_type_past_otp_expiry_is_403_otp_expired(
    admin: AsyncClient,
    anon: AsyncClient,
    local_stack: LocalStack,
    link_type: str,
    verify_type: str,
    column: str,
) -> None:
    email = new_email()
    if link_type not in ("signup", "invite"):
        await anon.auth.sign_up({"email": email, "password": PASSWORD})
    params: dict[str, Any] = {"type": link_type, "email": email, "password": PASSWORD}
    if link_type == "email_change_new":
        params["new_email"] = new_email()
    link = await admin.auth.admin.generate_link(params)  # type: ignore[arg-type]
    _backdate(local_stack, email, column, 3601)

    with pytest.raises(AuthApiError) as by_hash:
        await anon.auth.verify_otp(
            {"token_hash": link.properties.hashed_token, "type": verify_type}  # type: ignore[typeddict-item]
        )
    landed = _fragment(_follow(link.properties.action_link).headers["location"])

    assert (by_hash.value.status, by_hash.value.code) == (403, "otp_expired")
    assert landed["error_code"] == "otp_expired"


@pytest.mark.anyio
async def test_email_change_link_is_single_use(admin: AsyncClient, anon: AsyncClient) -> None:
    email, new = new_email(), new_email()
    await anon.auth.sign_up({"email": email, "password": PASSWORD})
    link = await admin.auth.admin.generate_link(
        {"type": "email_change_new", "email": email, "new_email": new}
    )
    token_hash = link.properties.hashed_token

    first = await anon.auth.verify_otp({"token_hash": token_hash, "type": "email_change"})
    with pytest.raises(AuthApiError) as again:
        await anon.auth.verify_otp({"token_hash": token_hash, "type": "email_change"})

    assert first.user is not None and first.user.email == new
    assert (again.value.status, again.value.code) == (403, "otp_expired")


@pytest.mark.anyio
async def test_pkce_sign_up_confirmation_link_gives_a_code_for_a_session(
    standin: StandinFactory,
    local_stack: LocalStack,
    http: httpx.AsyncClient,
    project_config: AuthConfig,
) -> None:
    server = standin(_confirming(project_config))
    client = await _client(server.url, local_stack.keys.anon_key, http, pkce=True)
    box = mailbox_of(server.ctx)  # type: ignore[attr-defined]
    email = new_email()

    await client.auth.sign_up({"email": email, "password": PASSWORD})
    mail = _only_mail(box, email, "signup")
    landed = _follow(mail.link)
    code = parse_qs(urlsplit(landed.headers["location"]).query)["code"][0]
    res = await client.auth.exchange_code_for_session({"auth_code": code})  # type: ignore[typeddict-item]

    assert mail.token_hash.startswith("pkce_")
    assert res.user is not None and res.user.email_confirmed_at is not None


@pytest.mark.anyio
async def test_pkce_email_change_link_gives_a_code_for_the_new_email(
    pkce_client: AsyncClient, mailbox: Mailbox
) -> None:
    email, new = new_email(), new_email()
    await pkce_client.auth.sign_up({"email": email, "password": PASSWORD})

    await pkce_client.auth.update_user({"email": new})
    mail = _only_mail(mailbox, new, "email_change")
    landed = _follow(mail.link)
    code = parse_qs(urlsplit(landed.headers["location"]).query)["code"][0]
    res = await pkce_client.auth.exchange_code_for_session({"auth_code": code})  # type: ignore[typeddict-item]

    assert mail.token_hash.startswith("pkce_")
    assert res.user is not None and res.user.email == new


@pytest.mark.anyio
@pytest.mark.parametrize("phone", ["not-a-phone", "+0123", "1"])
async def test_verify_otp_with_an_invalid_phone_is_gotrues_e164_message(
    anon: AsyncClient, phone: str
) -> None:
    with pytest.raises(AuthApiError) as err:
        await anon.auth.verify_otp({"phone": phone, "token": "123456", "type": "sms"})
    assert (err.value.status, err.value.code) == (400, "validation_failed")
    assert err.value.message == "Invalid phone number format (E.164 required)"
