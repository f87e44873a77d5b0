"""Every failure of a turn (docs/design.md §3, §10), end to end over real HTTP on 127.0.0.1."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from app.db.attestation_keys import provision_attestation_key
from app.db.migrate import apply_migrations
from app.local.cluster import prepare_local_cluster
from app.local.pg_install import find_install
from app.local.postgres import EmbeddedPostgres, free_port
from app.local.stack import LocalStack
from app.user_messages import user_message
from tests.support.chat_stack import ChatStack, start_chat_stack, stream
from tests.support.database import MIGRATIONS

pytestmark = pytest.mark.slow


def ask(text: str, conversation_id: str) -> dict[str, object]:
    return {"message": text, "conversationId": conversation_id}


def counts(stack: ChatStack, conv: str) -> tuple[int, int, int]:
    (row,) = stack.rows(
        "select (select count(*) from public.messages where conversation_id = %s and role='user'),"
        " (select count(*) from public.messages where conversation_id = %s and role='assistant'),"
        " (select count(*) from public.usage_logs where conversation_id = %s)",
        conv,
        conv,
        conv,
    )
    return row  # type: ignore[return-value]


@pytest.mark.parametrize("fault", ["refuse", "500", "429", "529"])
def test_provider_failure_before_any_token_is_an_error_event_within_3s(
    chat_stack: ChatStack, fault: str
) -> None:
    user = chat_stack.new_user()
    conv = user.conversation()
    began = time.monotonic()

    result = stream(chat_stack, user, ask(f"hi [[standin fault={fault}]]", conv))

    assert time.monotonic() - began < 3.0
    assert result.status == 200
    assert result.tokens == []
    assert result.last == {
        "type": "error",
        "message": user_message("provider_unavailable"),
        "code": "provider_unavailable",
    }
    assert counts(chat_stack, conv) == (1, 0, 0)  # user message kept; nothing billed


def test_provider_head_that_never_arrives_is_an_error_within_the_availability_budget(
    chat_stack: ChatStack,
) -> None:
    user = chat_stack.new_user()
    conv = user.conversation()
    began = time.monotonic()

    result = stream(chat_stack, user, ask("hi [[standin fault=hang hold_s=20]]", conv))

    elapsed = time.monotonic() - began
    assert elapsed < chat_stack.settings.llm_availability_budget + 0.5
    assert result.last["type"] == "error"
    assert result.last["code"] in ("provider_timeout", "provider_unavailable")
    assert counts(chat_stack, conv) == (1, 0, 0)


def test_stall_mid_stream_errors_after_idle_timeout_and_stores_partial_answer(
    chat_stack: ChatStack,
) -> None:
    user = chat_stack.new_user()
    conv = user.conversation()
    began = time.monotonic()

    result = stream(chat_stack, user, ask("hi [[standin fault=stall after=4 hold_s=20]]", conv))

    assert len(result.tokens) == 4
    assert result.last["code"] == "provider_timeout"
    assert time.monotonic() - began < chat_stack.settings.llm_idle_timeout + 2.0
    ((content, status),) = chat_stack.rows(
        "select content, status from public.messages where conversation_id = %s"
        " and role = 'assistant'",
        conv,
    )
    assert content == "".join(result.tokens) and status == "partial"
    ((ustatus, estimated, tout),) = chat_stack.rows(
        "select status, estimated, tokens_out from public.usage_logs where conversation_id = %s",
        conv,
    )
    assert (ustatus, estimated) == ("partial", True) and tout >= 4


@pytest.mark.parametrize("fault", ["drop", "error", "malformed", "truncate"])
def test_broken_stream_is_an_error_event_at_once_with_partial_answer_kept(
    chat_stack: ChatStack, fault: str
) -> None:
    user = chat_stack.new_user()
    conv = user.conversation()
    began = time.monotonic()

    result = stream(chat_stack, user, ask(f"hi [[standin fault={fault} after=3]]", conv))

    assert time.monotonic() - began < chat_stack.settings.llm_idle_timeout
    assert result.last["type"] == "error"
    assert len(result.tokens) >= 3
    user_msgs, assistant_msgs, usage_rows = counts(chat_stack, conv)
    assert (user_msgs, assistant_msgs, usage_rows) == (1, 1, 1)
    ((status,),) = chat_stack.rows(
        "select status from public.messages where conversation_id = %s and role = 'assistant'",
        conv,
    )
    assert status == "partial"


def test_client_disconnect_closes_upstream_within_100ms_and_keeps_partial_usage(
    chat_stack: ChatStack,
) -> None:
    user = chat_stack.new_user()
    conv = user.conversation()
    since = time.monotonic()

    result = stream(
        chat_stack, user, ask("hi [[standin tokens=200 delay_ms=30]]", conv), stop_after_tokens=5
    )
    left_at = time.monotonic()

    entry = None
    for _ in range(100):
        entries = [e for e in chat_stack.ledger(since) if e.get("closed_at")]
        if entries:
            entry = entries[0]
            break
        time.sleep(0.02)
    assert entry is not None
    assert entry["client_disconnected"] is True
    assert entry["closed_at"] - left_at < 0.1
    assert entry["output_tokens"] < 200
    for _ in range(100):  # the partial write lands just after the cancel
        if counts(chat_stack, conv)[2]:
            break
        time.sleep(0.05)
    assert counts(chat_stack, conv) == (1, 1, 1)
    ((content, status),) = chat_stack.rows(
        "select content, status from public.messages where conversation_id = %s"
        " and role = 'assistant'",
        conv,
    )
    assert status == "partial" and content.startswith("".join(result.tokens))
    ((estimated, tout),) = chat_stack.rows(
        "select estimated, tokens_out from public.usage_logs where conversation_id = %s", conv
    )
    assert estimated is True and tout >= 5


def test_fallback_provider_answers_when_the_primary_refuses(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    stack = start_chat_stack(
        local_stack,
        tmp_path,
        anthropic_base_url=dead,
        llm_fallback_provider="openai",
        llm_fallback_model="gpt-4o-mini",
    )
    try:
        user = stack.new_user()
        conv = user.conversation()
        began = time.monotonic()
        result = stream(stack, user, ask("hi [[standin tokens=5]]", conv))
        assert time.monotonic() - began < 3.0
        assert result.last["type"] == "done" and len(result.tokens) == 5
        ((provider, model),) = stack.rows(
            "select provider, model from public.usage_logs where conversation_id = %s", conv
        )
        assert provider == "openai" and model.startswith("gpt-4o-mini")
    finally:
        assert stack.server is not None
        stack.server.stop()


# --- the database going away ------------------------------------------------------------------
@pytest.fixture
def own_database(local_stack: LocalStack, tmp_path: Path) -> Iterator[EmbeddedPostgres]:
    """A private cluster this test may stop and start (the session database must stay up)."""
    pg = EmbeddedPostgres(tmp_path / "pg", free_port(), find_install(), durable=False)
    pg.start()
    prepare_local_cluster(pg.superuser_dsn)
    apply_migrations(pg.dsn("postgres"), MIGRATIONS)
    provision_attestation_key(pg.dsn("postgres"), local_stack.keys.attestation_key)
    yield pg
    pg.stop()


def test_database_down_at_the_start_is_503_json_within_3s(
    local_stack: LocalStack, own_database: EmbeddedPostgres, tmp_path: Path
) -> None:
    stack = start_chat_stack(local_stack, tmp_path / "outbox", db_port=own_database.port)
    try:
        user = stack.new_user()
        conv = user.conversation()
        assert stream(stack, user, ask("warm up [[standin tokens=1]]", conv)).last["type"] == "done"
        own_database.stop()
        began = time.monotonic()
        response = httpx.post(
            stack.endpoint, json=ask("hi", conv), headers=user.headers(), timeout=10
        )
        assert time.monotonic() - began < 3.0
        assert response.status_code == 503
        assert response.json()["code"] == "store_unavailable"
        assert response.json()["userMessage"] == user_message("store_unavailable")
    finally:
        assert stack.server is not None
        stack.server.stop()


def test_database_down_at_the_end_spools_to_outbox_and_replays_when_back(
    local_stack: LocalStack, own_database: EmbeddedPostgres, tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox"
    stack = start_chat_stack(local_stack, outbox, db_port=own_database.port)
    try:
        user = stack.new_user()
        conv = user.conversation()
        result_box: dict[str, object] = {}

        import threading

        def run() -> None:
            result_box["r"] = stream(stack, user, ask("hi [[standin tokens=30 delay_ms=40]]", conv))

        thread = threading.Thread(target=run)
        thread.start()
        time.sleep(0.6)
        own_database.stop()
        thread.join(30)
        result = result_box["r"]
        assert result.last["type"] == "done"  # type: ignore[attr-defined]
        assert len(list(outbox.glob("*.json"))) == 1

        own_database.start()
        for _ in range(100):
            if not list(outbox.glob("*.json")):
                break
            time.sleep(0.1)
        assert list(outbox.glob("*.json")) == []
        with psycopg.connect(own_database.superuser_dsn) as conn:
            rows = conn.execute(
                "select m.id::text, m.content, u.status from public.messages m"
                " join public.usage_logs u on u.message_id = m.id where m.conversation_id = %s",
                (conv,),
            ).fetchall()
        assert rows == [(result.last["messageId"], "".join(result.tokens), "completed")]  # type: ignore[attr-defined]
    finally:
        assert stack.server is not None
        stack.server.stop()


def test_token_expiring_mid_stream_is_stored_by_the_service_at_once(
    chat_stack: ChatStack,
) -> None:
    # Valid at the start only thanks to the 30 s leeway; past it by the end of a ~3 s stream.
    user = chat_stack.new_user(expires_in=60, now=int(time.time()) - 60 - 28)
    conv = user.conversation()

    result = stream(chat_stack, user, ask("hi [[standin tokens=25 delay_ms=150]]", conv))

    assert result.last["type"] == "done"
    for _ in range(100):
        if counts(chat_stack, conv) == (1, 1, 1):
            break
        time.sleep(0.1)
    assert counts(chat_stack, conv) == (1, 1, 1)
    outbox = Path(chat_stack.settings.outbox_dir)
    assert not list(outbox.glob("**/*.json")), "stored through the outbox, not at once"
