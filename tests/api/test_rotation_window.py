"""The chat endpoint during a signing-key rotation: HS256 and ES256 tokens of one user both stream.

The local stack signs user tokens with ES256 and still holds the legacy HS256 secret, as a
project whose legacy secret is "previously used". With the default `AUTH_MODE=rotation`, a
token signed by either streams a turn and stores its usage: with `SUPABASE_JWT_SECRET` set the
HS256 one is verified locally, without it by one `GET /auth/v1/user` to the local Auth.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jwt
import pytest

from app.local.stack import LocalStack
from tests.support.chat_stack import ChatStack, User, start_chat_stack, stream

pytestmark = pytest.mark.slow


def _hs256_twin(stack: ChatStack, user: User) -> User:
    """The same user's token signed by the legacy secret (no session: none is stored)."""
    claims: dict[str, Any] = jwt.decode(user.token, options={"verify_signature": False})
    claims.pop("session_id")
    token = jwt.encode(claims, stack.ctx.keys.jwt_secret, algorithm="HS256")
    return User(user.id, user.email, token, stack, user.conversations)


@pytest.fixture(scope="module", params=["with the secret", "asking Auth"])
def rotation_stack(
    request: pytest.FixtureRequest,
    local_stack: LocalStack,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ChatStack]:
    secret = {"supabase_jwt_secret": local_stack.keys.jwt_secret}
    stack = start_chat_stack(
        local_stack,
        tmp_path_factory.mktemp("outbox"),
        auth_mode="rotation",
        **(secret if request.param == "with the secret" else {}),
    )
    yield stack
    assert stack.server is not None
    stack.server.stop()


def test_rotation_mode_streams_for_hs256_and_es256_tokens_of_the_same_user(
    rotation_stack: ChatStack,
) -> None:
    es256 = rotation_stack.new_user()
    hs256 = _hs256_twin(rotation_stack, es256)
    assert jwt.get_unverified_header(es256.token)["alg"] == "ES256"
    assert jwt.get_unverified_header(hs256.token)["alg"] == "HS256"
    conversation = es256.conversation()

    for user in (es256, hs256, hs256):  # the HS256 one twice: the second is remembered
        body = {"message": "Hello [[standin tokens=3]]", "conversationId": conversation}
        result = stream(rotation_stack, user, body)
        assert result.status == 200, result.body
        assert result.last["type"] == "done"

    rows = rotation_stack.rows(
        "select count(*) from public.usage_logs u join public.messages m on m.id = u.message_id"
        " where m.conversation_id = %s",
        conversation,
    )
    assert rows == [(3,)]


def test_rotation_mode_refuses_an_hs256_token_of_another_secret(rotation_stack: ChatStack) -> None:
    user = rotation_stack.new_user()
    claims: dict[str, Any] = jwt.decode(user.token, options={"verify_signature": False})
    forged = jwt.encode(claims, "not-the-projects-legacy-secret-0123456789", algorithm="HS256")
    body = {"message": "Hello", "conversationId": user.conversation()}

    result = stream(rotation_stack, User(user.id, user.email, forged, rotation_stack), body)

    assert result.status == 401
