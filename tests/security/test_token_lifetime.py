"""A turn that outlives its user's access token (docs/design.md §13: the service's own bookkeeping
never depends on the user's token). Tokens are minted by the Auth stand-in with a one-second
`jwt_expiry`; nothing patches the clock.

PostgREST (and its stand-in) accept a token until 30 s past its `exp`, as the service's verifier
does (JWT_LEEWAY_SECONDS): a turn that starts a few seconds before that end is a turn that starts
in the last minutes of a real token's life.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest

from app.local.auth.config import load_auth_config
from app.local.stack import LocalStack
from tests.security.data_api import (
    BackgroundStream,
    assert_stored_as_billed,
    set_limits,
    settled_ledger,
    streaming_turns,
)
from tests.support.chat_stack import ChatStack, start_chat_stack

pytestmark = pytest.mark.slow

POSTGREST_LEEWAY = 30  # seconds past `exp` the Data API still accepts a token
LEASE = 2  # renewed every second


@pytest.fixture(scope="module")
def short_tokens(
    local_stack: LocalStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ChatStack]:
    config = load_auth_config().without_rate_limits().replace(jwt_expiry=1)
    stack = start_chat_stack(
        local_stack,
        tmp_path_factory.mktemp("outbox-short-tokens"),
        auth_config=config,
        reservation_ttl_seconds=LEASE,
    )
    yield stack
    assert stack.server is not None
    stack.server.stop()


def _sleep_until(moment: float) -> None:
    time.sleep(max(moment - time.time(), 0))


def test_turn_that_outlives_its_token_keeps_its_lease_and_slot_and_is_stored_at_once(
    short_tokens: ChatStack,
) -> None:
    stack = short_tokens
    user = stack.signed_up_user()
    conv = user.conversation()
    set_limits(stack, user, max_concurrent_streams=1)
    exp = jwt.decode(user.token, options={"verify_signature": False})["exp"]
    refused_from = exp + POSTGREST_LEEWAY

    _sleep_until(refused_from - 3)
    since = time.monotonic()
    first = BackgroundStream(
        stack.endpoint,
        user,
        {"message": "a long answer [[standin tokens=80 delay_ms=100]]", "conversationId": conv},
    )
    first.wait_streaming()
    (turn_id,) = streaming_turns(stack, user)

    # The Data API refuses the first token now, and a whole lease has passed since: a renewal
    # made with it would have failed and the turn would look like a dead worker's.
    _sleep_until(refused_from + LEASE + 1)
    assert not first.finished.is_set(), "the answer ended before the token did"
    expired = httpx.post(
        f"{stack.url}/rest/v1/rpc/chat_ping", headers=user.headers(), json={}, timeout=10
    )
    fresh = stack.sign_in(user)
    second = httpx.post(
        stack.endpoint,
        json={"message": "meanwhile [[standin tokens=1]]", "conversationId": conv},
        headers={"Authorization": f"Bearer {fresh}", "apikey": stack.ctx.keys.anon_key},
        timeout=30,
    )
    still_streaming = stack.rows(
        "select state, expires_at > now() from private.turns where turn_id = %s", turn_id
    )
    first.join()

    assert expired.status_code == 401, expired.text  # the first token is really dead
    assert second.status_code == 429 and second.json()["code"] == "rate_limited", second.text
    assert still_streaming == [("streaming", True)]  # its lease kept, its slot held
    assert first.last["type"] == "done"
    # Stored at once, by the service, as the provider billed it: no abandoned estimate, nothing
    # spooled to the outbox.
    entries = settled_ledger(stack, since, 1)
    assert_stored_as_billed(stack, user, entries)
    assert stack.rows(
        "select status, turn_id::text from public.usage_logs where user_id = %s", user.id
    ) == [("completed", turn_id)]
    assert stack.rows("select state from private.turns where turn_id = %s", turn_id) == [
        ("finished",)
    ]
    assert not list(Path(stack.settings.outbox_dir).glob("**/*.json"))
