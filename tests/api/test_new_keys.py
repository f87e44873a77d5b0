"""The service with only Supabase's 2026 keys: no legacy anon or service_role key anywhere.

The local stack maps the CLI's fixed `sb_publishable_…`/`sb_secret_…` keys at its gateway as the
CLI's Kong does (an `sb_` key in `apikey` becomes the anon or service_role JWT; `Bearer sb_…` is
dropped), so these tests need that gateway (branch `localsplit`); before it they get 401
"Invalid API key". The keys are the CLI's literal values, as public test suites hard-code them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from httpx_sse import connect_sse
from pydantic import SecretStr

from app.local.server import ServerThread
from app.local.stack import LocalStack
from tests.deploy.serving import serve
from tests.support.chat_stack import ChatStack, start_chat_stack, stream

pytestmark = pytest.mark.slow

PUBLISHABLE = "sb_publishable_ACJWlzQHlZjBrEguHvfOxg_3BJgxAaH"
SECRET = "sb_secret_N7UND0UgjKTVK-Uodkm0Hg_xSvEMPvz"
NEW_KEYS_ONLY = {
    "supabase_anon_key": SecretStr(""),
    "supabase_service_role_key": SecretStr(""),
    "supabase_publishable_key": SecretStr(PUBLISHABLE),
    "supabase_secret_key": SecretStr(SECRET),
}


@pytest.fixture(scope="module")
def new_keys_stack(
    local_stack: LocalStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ChatStack]:
    stack = start_chat_stack(
        local_stack, tmp_path_factory.mktemp("outbox"), auth_mode="rotation", **NEW_KEYS_ONLY
    )
    yield stack
    assert stack.server is not None
    stack.server.stop()


def test_service_with_only_the_2026_keys_streams_and_stores_usage(
    new_keys_stack: ChatStack,
) -> None:
    user = new_keys_stack.new_user()
    conversation = user.conversation()
    assert httpx.get(f"{new_keys_stack.url}/readyz", timeout=10).status_code == 200

    result = stream(
        new_keys_stack,
        user,
        {"message": "Hello [[standin tokens=4]]", "conversationId": conversation},
        headers={"apikey": PUBLISHABLE},
    )

    assert result.status == 200, result.body
    done = result.last
    assert done["type"] == "done"
    rows = new_keys_stack.rows(
        "select status, tokens_out from public.usage_logs where message_id = %s",
        done["messageId"],
    )
    assert rows == [("completed", 4)]


def test_service_with_only_the_2026_keys_sweeps_with_the_secret_key(
    new_keys_stack: ChatStack,
) -> None:
    """The service-role client (outbox replay, sweep) reaches the Data API with `sb_secret_`."""
    response = httpx.post(
        f"{new_keys_stack.url}/rest/v1/rpc/chat_sweep",
        json={},
        headers={"apikey": SECRET},
        timeout=10,
    )
    assert response.status_code == 200, response.text


def test_serve_starts_and_streams_with_only_the_2026_key_names(
    local_stack: LocalStack, stack_server: ServerThread, tmp_path: Path
) -> None:
    """`chat-stream serve` as a subprocess, the session's stack (`stack_server`) its project."""
    legacy_unset = {"SUPABASE_ANON_KEY": "", "SUPABASE_SERVICE_ROLE_KEY": "", "LOG_LEVEL": "DEBUG"}
    user_id = str(uuid.uuid4())
    with psycopg.connect(local_stack.pg.superuser_dsn, autocommit=True) as conn:
        conn.execute(
            "insert into auth.users (id, email, aud, role, created_at, updated_at)"
            " values (%s, %s, 'authenticated', 'authenticated', now(), now())",
            (user_id, f"k-{user_id[:8]}@example.com"),
        )
        conn.execute(  # a live session, which the service confirms with Auth
            "insert into auth.sessions (id, user_id, created_at, updated_at, aal)"
            " values (%s, %s, now(), now(), 'aal1')",
            (user_id, user_id),
        )
        row = conn.execute(
            "insert into public.conversations (user_id, title) values (%s, 'keys') returning id",
            (user_id,),
        ).fetchone()
    assert row is not None
    token = local_stack.keys.user_access_token(
        user_id=user_id, issuer=local_stack.ctx.jwt_issuer, session_id=user_id
    )

    with (
        serve(
            local_stack,
            tmp_path,
            SUPABASE_PUBLISHABLE_KEY=PUBLISHABLE,
            SUPABASE_SECRET_KEY=SECRET,
            **legacy_unset,
        ) as served,
        httpx.Client(timeout=30) as client,
        connect_sse(
            client,
            "POST",
            served.endpoint,
            json={"message": "Hi [[standin tokens=2]]", "conversationId": str(row[0])},
            headers={"Authorization": f"Bearer {token}", "apikey": PUBLISHABLE},
        ) as source,
    ):
        assert source.response.status_code == 200
        events = [json.loads(sse.data) for sse in source.iter_sse()]

    assert events[-1]["type"] == "done"
    log = served.log.read_text()
    assert SECRET[:7] not in log and PUBLISHABLE[:7] not in log  # 6 characters at most
    with psycopg.connect(local_stack.pg.superuser_dsn) as conn:
        stored = conn.execute(
            "select count(*) from public.usage_logs where message_id = %s",
            (events[-1]["messageId"],),
        ).fetchone()
    assert stored == (1,)
