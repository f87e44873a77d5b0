"""TokenVerifier against the local stack's real JWKS over HTTP, and in HS256 mode.

Each refusal case names the reason it must be refused for, so a token that fails for some other
reason (say, a bad signature where the audience check was meant) fails the test.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from jwt.algorithms import ECAlgorithm
from jwt.utils import base64url_encode

from app.auth import TokenVerifier, bearer_token
from app.config import Settings
from app.core.domain import Caller
from app.errors import AUTH_MESSAGE, AuthError
from app.local.keys import LocalKeys
from app.local.server import ServerThread
from app.local.stack import LocalStack
from tests.auth.tokens import (
    DROP,
    hs256_with_raw_secret,
    new_key,
    rsa_private_key,
    unsigned,
    user_claims,
)
from tests.support.database import make_settings

pytestmark = pytest.mark.anyio

SECRET = "a-legacy-jwt-secret-long-enough-for-hs256-and-hs512-0123456789abcdefghij"


@dataclass(frozen=True)
class Stack:
    """What a case needs to mint tokens for the local stack."""

    keys: LocalKeys
    issuer: str

    def claims(self, **overrides: object) -> dict[str, object]:
        return user_claims(issuer=self.issuer, **overrides)

    def es256(self, **overrides: object) -> str:
        return self.keys.sign_access_token(self.claims(**overrides))


@pytest.fixture
def stack(local_stack: LocalStack) -> Stack:
    return Stack(keys=local_stack.keys, issuer=local_stack.ctx.jwt_issuer)


@pytest.fixture
def jwks_settings(stack_server: ServerThread, local_stack: LocalStack) -> Settings:
    return make_settings(
        auth_mode="jwks",
        supabase_url=stack_server.url,
        supabase_anon_key=local_stack.keys.anon_key,
        jwt_issuer=local_stack.ctx.jwt_issuer,
    )


async def verify(settings: Settings, header: str | None) -> Caller:
    async with httpx.AsyncClient() as http:
        return await TokenVerifier(settings, http).verify(header)


def _bearer(token: str) -> str:
    return f"Bearer {token}"


def _other_key_same_kid(s: Stack) -> str:
    return new_key().sign(s.claims(), kid=s.keys.kid)


def _hs256_with_public_key_pem(s: Stack) -> str:
    public = ECAlgorithm.from_jwk(s.keys.public_jwk())
    assert isinstance(public, ec.EllipticCurvePublicKey)
    pem = public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    return hs256_with_raw_secret(s.claims(), pem, kid=s.keys.kid)


def _rs256_with_the_ec_kid(s: Stack) -> str:
    return jwt.encode(s.claims(), rsa_private_key(), algorithm="RS256", headers={"kid": s.keys.kid})


def now() -> int:
    """Read when the token is minted, not at import: the suite may run for minutes."""
    return int(time.time())


REFUSED: list[tuple[str, Callable[[Stack], str | None], str]] = [
    ("no header", lambda s: None, "no Authorization header"),
    ("empty header", lambda s: "", "no Authorization header"),
    ("basic scheme", lambda s: "Basic dXNlcjpwYXNzd29yZA==", "not Bearer"),
    ("bare token without scheme", lambda s: s.es256(), "not Bearer"),
    ("bearer without token", lambda s: "Bearer   ", "empty Bearer token"),
    ("garbage", lambda s: _bearer("garbage"), "malformed token"),
    ("three garbage parts", lambda s: _bearer("a.b.c"), "malformed token"),
    ("huge token", lambda s: _bearer("a" * 20_000), "token too long"),
    (
        "alg none",
        lambda s: _bearer(unsigned(s.claims(), {"alg": "none", "kid": s.keys.kid})),
        "algorithm 'none'",
    ),
    (
        "alg None capitalised",
        lambda s: _bearer(unsigned(s.claims(), {"alg": "None"})),
        "algorithm 'None'",
    ),
    ("no alg", lambda s: _bearer(unsigned(s.claims(), {"typ": "JWT"})), "algorithm None"),
    ("another key with the same kid", lambda s: _bearer(_other_key_same_kid(s)), "bad signature"),
    ("tampered payload", lambda s: _bearer(_tamper(s.es256())), "bad signature"),
    (
        "HS256 keyed with the public key PEM",
        lambda s: _bearer(_hs256_with_public_key_pem(s)),
        "'HS256' is not allowed with asymmetric",
    ),
    ("anon API key", lambda s: _bearer(s.keys.anon_key), "'HS256' is not allowed"),
    ("service_role API key", lambda s: _bearer(s.keys.service_role_key), "'HS256' is not allowed"),
    (
        "RS256 under the EC key's kid",
        lambda s: _bearer(_rs256_with_the_ec_kid(s)),
        "does not match the key",
    ),
    ("unknown kid", lambda s: _bearer(new_key().sign(s.claims())), "no signing key for kid"),
    ("expired", lambda s: _bearer(s.es256(exp=now() - 3600, iat=now() - 7200)), "token expired"),
    ("nbf in the future", lambda s: _bearer(s.es256(nbf=now() + 3600)), "not yet valid"),
    ("iat in the future", lambda s: _bearer(s.es256(iat=now() + 3600)), "not yet valid"),
    ("wrong aud", lambda s: _bearer(s.es256(aud="someone-else")), "wrong audience"),
    ("no aud", lambda s: _bearer(s.es256(aud=DROP)), "missing claim 'aud'"),
    ("no exp", lambda s: _bearer(s.es256(exp=DROP)), "missing claim 'exp'"),
    ("wrong iss", lambda s: _bearer(s.es256(iss="https://evil.example/auth/v1")), "wrong issuer"),
    ("role anon", lambda s: _bearer(s.es256(role="anon")), "role 'anon'"),
    ("role service_role", lambda s: _bearer(s.es256(role="service_role")), "role 'service_role'"),
    ("no role", lambda s: _bearer(s.es256(role=DROP)), "missing claim 'role'"),
    ("no sub", lambda s: _bearer(s.es256(sub=DROP)), "missing claim 'sub'"),
    ("sub not a UUID", lambda s: _bearer(s.es256(sub="not-a-uuid")), "sub is not a UUID"),
    (
        "sub a UUID in braces",
        lambda s: _bearer(s.es256(sub="{" + str(uuid.uuid4()) + "}")),
        "sub is not a UUID",
    ),
    ("sub a number", lambda s: _bearer(s.es256(sub=12345)), "sub is not a UUID"),
]


def _tamper(token: str) -> str:
    head, body, sig = token.split(".")
    claims = jwt.decode(token, options={"verify_signature": False})
    claims["sub"] = str(uuid.uuid4())
    forged_body = base64url_encode(json.dumps(claims).encode()).decode()
    assert forged_body != body
    return f"{head}.{forged_body}.{sig}"


@pytest.mark.parametrize(
    ("make_header", "reason"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED]
)
async def test_verify_jwks_refused_token_raises_auth_error_for_that_reason(
    jwks_settings: Settings, stack: Stack, make_header: Callable[[Stack], str | None], reason: str
) -> None:
    with pytest.raises(AuthError) as caught:
        await verify(jwks_settings, make_header(stack))

    assert reason in caught.value.detail
    assert caught.value.status == 401
    assert caught.value.user_message == AUTH_MESSAGE


async def test_verify_jwks_stack_user_token_returns_caller(
    jwks_settings: Settings, local_stack: LocalStack
) -> None:
    user_id = str(uuid.uuid4())
    token = local_stack.keys.user_access_token(user_id=user_id, issuer=local_stack.ctx.jwt_issuer)

    caller = await verify(jwks_settings, f"Bearer {token}")

    assert caller.user_id == user_id
    assert caller.token == token
    assert caller.claims["role"] == "authenticated"
    assert token not in repr(caller)


@pytest.mark.parametrize(
    ("header_for", "overrides"),
    [
        pytest.param(lambda t: f"bearer {t}", {}, id="lower-case scheme"),
        pytest.param(lambda t: f"  Bearer   {t}  ", {}, id="extra whitespace"),
        pytest.param(lambda t: f"Bearer {t}", {"exp": -10}, id="expired within leeway"),
        pytest.param(lambda t: f"Bearer {t}", {"iat": +10}, id="iat within leeway"),
        pytest.param(lambda t: f"Bearer {t}", {"aud": ["authenticated", "x"]}, id="aud list"),
    ],
)
async def test_verify_jwks_tolerated_variations_are_accepted(
    jwks_settings: Settings,
    stack: Stack,
    header_for: Callable[[str], str],
    overrides: dict[str, object],
) -> None:
    """`exp`/`iat` overrides are seconds from now (read at mint time)."""
    relative = {k: now() + v for k, v in overrides.items() if k in ("exp", "iat")}  # type: ignore[operator]
    caller = await verify(jwks_settings, header_for(stack.es256(**(overrides | relative))))

    assert caller.claims["role"] == "authenticated"


async def test_verify_upper_case_uuid_sub_is_returned_canonical(
    jwks_settings: Settings, stack: Stack
) -> None:
    user_id = str(uuid.uuid4())

    caller = await verify(jwks_settings, f"Bearer {stack.es256(sub=user_id.upper())}")

    assert caller.user_id == user_id


async def test_verify_without_issuer_setting_accepts_any_issuer(
    jwks_settings: Settings, stack: Stack
) -> None:
    settings = jwks_settings.model_copy(update={"jwt_issuer": ""})

    caller = await verify(settings, f"Bearer {stack.es256(iss='https://other.example/auth/v1')}")

    assert caller.claims["iss"] == "https://other.example/auth/v1"


async def test_verify_custom_audience_is_enforced(jwks_settings: Settings, stack: Stack) -> None:
    settings = jwks_settings.model_copy(update={"jwt_audience": "coachme"})

    assert (await verify(settings, f"Bearer {stack.es256(aud='coachme')}")).claims["aud"]
    with pytest.raises(AuthError, match="wrong audience"):
        await verify(settings, f"Bearer {stack.es256()}")


# --- HS256 mode ---------------------------------------------------------------------------------
def hs256_settings(secret: str = SECRET) -> Settings:
    return make_settings(auth_mode="hs256", supabase_jwt_secret=secret)


async def test_verify_hs256_valid_token_returns_caller() -> None:
    user_id = str(uuid.uuid4())
    token = jwt.encode(user_claims(issuer="x", user_id=user_id), SECRET, algorithm="HS256")

    caller = await verify(hs256_settings(), f"Bearer {token}")

    assert caller.user_id == user_id


HS256_REFUSED: list[tuple[str, Callable[[LocalKeys], str], str]] = [
    (
        "wrong secret",
        lambda k: jwt.encode(user_claims(issuer="x"), "x" * 64, algorithm="HS256"),
        "bad signature",
    ),
    (
        "ES256 token",
        lambda k: k.sign_access_token(user_claims(issuer="x")),
        "'ES256' is not allowed with the HS256 secret",
    ),
    (
        "HS512 under the secret",
        lambda k: jwt.encode(user_claims(issuer="x"), SECRET, algorithm="HS512"),
        "'HS512' is not allowed",
    ),
    ("alg none", lambda k: unsigned(user_claims(issuer="x"), {"alg": "none"}), "'none'"),
    ("anon API key over the same secret", lambda k: k.anon_key, "missing claim"),
    (
        "role anon with aud",
        lambda k: jwt.encode(user_claims(issuer="x", role="anon"), SECRET, algorithm="HS256"),
        "role 'anon'",
    ),
    (
        "role service_role with aud",
        lambda k: jwt.encode(
            user_claims(issuer="x", role="service_role"), SECRET, algorithm="HS256"
        ),
        "service_role",
    ),
    (
        "expired",
        lambda k: jwt.encode(user_claims(issuer="x", exp=now() - 3600), SECRET, algorithm="HS256"),
        "expired",
    ),
]


@pytest.mark.parametrize(
    ("make_token", "reason"), [c[1:] for c in HS256_REFUSED], ids=[c[0] for c in HS256_REFUSED]
)
async def test_verify_hs256_refused_token_raises_auth_error(
    make_token: Callable[[LocalKeys], str], reason: str
) -> None:
    keys = LocalKeys(**{**LocalKeys.generate().__dict__, "jwt_secret": SECRET})

    with pytest.raises(AuthError) as caught:
        await verify(hs256_settings(), f"Bearer {make_token(keys)}")

    assert reason in caught.value.detail


# --- construction -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        pytest.param({"auth_mode": "jwks"}, "SUPABASE_URL is required", id="jwks without url"),
        pytest.param({"auth_mode": "strict"}, "SUPABASE_URL is required", id="strict without url"),
        pytest.param(
            {"auth_mode": "strict", "supabase_url": "http://127.0.0.1:1"},
            "SUPABASE_PUBLISHABLE_KEY is required",
            id="strict without publishable key",
        ),
        pytest.param({}, "SUPABASE_URL is required", id="rotation without url"),
        pytest.param(
            {"supabase_url": "http://127.0.0.1:1", "supabase_jwt_secret": "short"},
            "at least 32 bytes",
            id="rotation short secret",
        ),
        pytest.param(
            {"supabase_jwks": '{"keys": []}'},
            "no asymmetric signature key",
            id="inline jwks without keys",
        ),
        pytest.param({"auth_mode": "hs256"}, "at least 32 bytes", id="hs256 without secret"),
        pytest.param(
            {"auth_mode": "hs256", "supabase_jwt_secret": "short"},
            "at least 32 bytes",
            id="hs256 short secret",
        ),
    ],
)
async def test_token_verifier_misconfigured_raises_at_construction(
    overrides: dict[str, object], message: str
) -> None:
    async with httpx.AsyncClient() as http:
        with pytest.raises(ValueError, match=message):
            TokenVerifier(make_settings(**overrides), http)


@pytest.mark.parametrize("header", [None, "", "Token abc", "Bearer", "Bearer ", "Bearer\tabc"])
def test_bearer_token_not_a_bearer_header_raises_auth_error(header: str | None) -> None:
    with pytest.raises(AuthError):
        bearer_token(header)
