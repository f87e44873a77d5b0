"""Provider-reported cost end to end: OpenRouter-shaped usage from the stand-in, through the
service and the attested `chat_finish`, into `usage_logs.provider_cost_usd`, and the report's
reconciliation table flagging the turn whose table price differs."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from app.analytics import load, provider_cost, report, sources
from app.local.stack import LocalStack
from tests.support.chat_stack import ChatStack, start_chat_stack, stream

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def openrouter_stack(
    local_stack: LocalStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ChatStack]:
    stack = start_chat_stack(
        local_stack,
        tmp_path_factory.mktemp("outbox"),
        llm_provider="openai-compatible",
        llm_model="gpt-4o-mini",
    )
    yield stack
    assert stack.server is not None
    stack.server.stop()


def _window(user_id: str) -> load.Window:
    now = datetime.now(UTC)
    return load.Window(now - timedelta(hours=1), now + timedelta(hours=1), user_id=user_id)


def test_provider_cost_openrouter_usage_is_stored_and_a_differing_turn_is_flagged(
    openrouter_stack: ChatStack, tmp_path: Path
) -> None:
    stack = openrouter_stack
    user = stack.new_user()
    conv = user.conversation()
    flagged = stream(stack, user, {"message": "Plan? [[standin tokens=4 cost=0.5]]",
                                   "conversationId": conv})  # fmt: skip
    silent = stream(stack, user, {"message": "And? [[standin tokens=4]]", "conversationId": conv})
    assert flagged.last["type"] == silent.last["type"] == "done"

    stored = dict(
        stack.rows(
            "select m.id::text, u.provider_cost_usd from public.usage_logs u"
            " join public.messages m on m.id = u.message_id where u.user_id = %s",
            user.id,
        )
    )
    assert stored == {flagged.last["messageId"]: Decimal("0.5"), silent.last["messageId"]: None}
    (turn_id, cost), = stack.rows(
        "select turn_id::text, cost_usd from public.usage_logs where message_id = %s",
        flagged.last["messageId"],
    )  # fmt: skip
    assert Decimal(0) < cost < Decimal("0.5")

    source = sources.PostgresSource(stack.superuser_dsn)
    mismatches, by_model = provider_cost.reconciliation(source, _window(user.id), Decimal("0.0001"))

    assert list(mismatches["turn_id"]) == [turn_id]  # the turn without a reported cost: nothing
    assert mismatches["difference_usd"].iloc[0] == Decimal("0.5") - cost
    assert by_model[["model", "turns", "users"]].to_dict("records") == [
        {"model": "gpt-4o-mini", "turns": 1, "users": 1}
    ]
    assert by_model["provider_cost_usd"].iloc[0] == Decimal("0.5")
    # Within the tolerance nothing is flagged.
    assert provider_cost.reconciliation(source, _window(user.id), Decimal(1))[0].empty

    now = datetime.now(UTC)
    options = report.ReportOptions(
        since=now - timedelta(days=1), until=now + timedelta(hours=1), user_id=user.id
    )
    built = report.build_report(source, options)
    report.write_report(built, tmp_path, ["html"])
    page = (tmp_path / "report.html").read_text()
    assert "Provider-reported cost vs our price, by model" in page
    assert list(built.cost_mismatches["turn_id"]) == [turn_id]
    assert built.cost_mismatches["email"].iloc[0] == user.email
