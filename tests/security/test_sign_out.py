"""Sign-outs and bans take effect on the chat endpoint within SESSION_CHECK_SECONDS (docs/design.md
§5), in the default verifier mode, with tokens the Auth stand-in minted (GoTrue 2.195+'s
`user_banned` and `session_not_found` refusals). The stack checks every second; the default is 60.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from app.local.stack import LocalStack
from tests.support.chat_stack import ChatStack, User, start_chat_stack, stream

pytestmark = pytest.mark.slow

CHECK_SECONDS = 1.0


@pytest.fixture(scope="module")
def checked(
    local_stack: LocalStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ChatStack]:
    stack = start_chat_stack(
        local_stack, tmp_path_factory.mktemp("outbox-sessions"), session_check_seconds=CHECK_SECONDS
    )
    yield stack
    assert stack.server is not None
    stack.server.stop()


def turn(stack: ChatStack, user: User, conv: str) -> int:
    result = stream(
        stack, user, {"message": "still me? [[standin tokens=2]]", "conversationId": conv}
    )
    if result.status == 200:
        assert result.last["type"] == "done"
    return result.status


def test_signed_out_token_is_refused_within_the_session_check_interval(checked: ChatStack) -> None:
    stack = checked
    user = stack.signed_up_user()
    conv = user.conversation()
    assert turn(stack, user, conv) == 200

    out = httpx.post(
        f"{stack.url}/auth/v1/logout",
        headers={"Authorization": f"Bearer {user.token}", "apikey": stack.ctx.keys.anon_key},
        timeout=10,
    )
    time.sleep(CHECK_SECONDS + 0.2)

    assert out.status_code == 204, out.text
    assert turn(stack, user, conv) == 401


def test_banned_users_token_is_refused_within_the_session_check_interval(
    checked: ChatStack,
) -> None:
    stack = checked
    user = stack.signed_up_user()
    conv = user.conversation()
    assert turn(stack, user, conv) == 200

    service = stack.ctx.keys.service_role_key
    banned = httpx.put(
        f"{stack.url}/auth/v1/admin/users/{user.id}",
        json={"ban_duration": "24h"},
        headers={"Authorization": f"Bearer {service}", "apikey": service},
        timeout=10,
    )
    time.sleep(CHECK_SECONDS + 0.2)

    assert banned.status_code == 200, banned.text
    assert turn(stack, user, conv) == 401
