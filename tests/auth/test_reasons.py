"""Every refusal names one operator-facing reason; the client still sees only the warm message."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from app.auth import REFUSAL_REASONS, TokenRefused
from app.config import Settings
from app.errors import AUTH_MESSAGE
from tests.auth.test_verify import REFUSED, Stack, jwks_settings, stack, verify  # noqa: F401

pytestmark = pytest.mark.anyio

# Each case of test_verify.REFUSED → the reason an operator sees in the log line and the metric.
REASONS = {
    "no header": "missing",
    "empty header": "missing",
    "basic scheme": "missing",
    "bare token without scheme": "missing",
    "bearer without token": "missing",
    "garbage": "malformed",
    "three garbage parts": "malformed",
    "huge token": "malformed",
    "alg none": "algorithm",
    "alg None capitalised": "algorithm",
    "no alg": "algorithm",
    "another key with the same kid": "signature",
    "tampered payload": "signature",
    "HS256 keyed with the public key PEM": "algorithm",
    "anon API key": "algorithm",
    "service_role API key": "algorithm",
    "RS256 under the EC key's kid": "algorithm",
    "unknown kid": "unknown_kid",
    "expired": "expired",
    "nbf in the future": "not_yet_valid",
    "iat in the future": "not_yet_valid",
    "wrong aud": "audience",
    "no aud": "audience",
    "no exp": "malformed",
    "wrong iss": "issuer",
    "role anon": "role",
    "role service_role": "role",
    "no role": "role",
    "no sub": "subject",
    "sub not a UUID": "subject",
    "sub a UUID in braces": "subject",
    "sub a number": "subject",
}


def test_reasons_cover_every_refusal_case_and_are_known_words() -> None:
    assert set(REASONS) == {case[0] for case in REFUSED}
    assert set(REASONS.values()) <= set(REFUSAL_REASONS)


@pytest.mark.parametrize(
    ("name", "make_header"), [c[:2] for c in REFUSED], ids=[c[0] for c in REFUSED]
)
async def test_verify_refusal_carries_its_reason_and_only_the_warm_message(
    jwks_settings: Settings,  # noqa: F811
    stack: Stack,  # noqa: F811
    name: str,
    make_header: Callable[[Stack], str | None],
) -> None:
    with pytest.raises(TokenRefused) as caught:
        await verify(jwks_settings, make_header(stack))

    assert caught.value.reason == REASONS[name]
    assert caught.value.user_message == AUTH_MESSAGE
    assert caught.value.public == "Unauthorized"  # what the client's JSON says, for every reason
