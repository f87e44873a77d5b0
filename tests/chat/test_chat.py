"""The use case with scripted ports: outcomes, accounting, fallback, deadlines, cancellation."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.chat.accounting import estimate_tokens, trim_history
from app.chat.service import ChatService
from app.core.domain import Caller, ChatMessage, TurnStart, Usage, UsageReport
from app.errors import AuthError, ProviderStreamError, ProviderUnavailable, StoreError
from app.main import chat_policy
from app.user_messages import user_message
from tests.chat.fakes import (
    ListSpool,
    MemoryStore,
    PerTokenPricer,
    ScriptedProvider,
    Sink,
    answer,
    drive,
)
from tests.support.database import make_settings

pytestmark = pytest.mark.anyio

CALLER = Caller(user_id="00000000-0000-0000-0000-0000000000aa", token="t")
TURN = TurnStart(conversation_id="c-1", content="hi", client_message_id=None, turn_id="r-1")


def service(*providers: ScriptedProvider, store: MemoryStore | None = None, **settings: object):
    spool = ListSpool()
    chat = ChatService(
        policy=chat_policy(
            make_settings(
                **(
                    {
                        "llm_availability_budget": 1.0,
                        "llm_idle_timeout": 0.3,
                        "finish_backoff_seconds": 0.01,
                    }
                    | settings
                )
            )
        ),
        store=store or MemoryStore(),
        providers=[(p, f"model-{i}") for i, p in enumerate(providers)],
        pricer=PerTokenPricer(),
        spool=spool,
    )
    return chat, spool


def events(sink: Sink) -> list[dict[str, object]]:
    return [json.loads(c[len(b"data: ") :]) for c in sink.chunks if c.startswith(b"data: ")]


async def run(chat: ChatService, sink: Sink | None = None):
    sink = sink or Sink()
    ctx = await chat.begin(CALLER, TURN)
    loop = asyncio.get_running_loop()
    outcome = await drive(chat.open(CALLER, TURN, ctx, started=loop.time()), sink)
    return outcome, sink


async def test_turn_completed_relays_each_delta_then_done_with_usage() -> None:
    provider = ScriptedProvider(steps=answer(["Hel", "lo", "!"]))
    chat, spool = service(provider)

    outcome, sink = await run(chat)

    evs = events(sink)
    assert [e["content"] for e in evs if e["type"] == "token"] == ["Hel", "lo", "!"]
    assert evs[-1] == {
        "type": "done",
        "messageId": outcome.record.message_id,
        "usage": {"prompt_tokens": 100, "completion_tokens": 3, "total_tokens": 103},
    }
    record = chat.store.finished[0]  # type: ignore[attr-defined]
    assert record.content == "Hello!" and record.status == "completed"
    (row,) = record.usage_rows
    assert row.usage == Usage(input_tokens=100, output_tokens=3)
    assert row.price.cost_usd == Decimal("0.000103")
    assert row.ttft_ms is not None and row.model == "m-1"
    assert provider.closed == 1 and spool.spooled == []


async def test_turn_provider_error_mid_stream_keeps_partial_answer_and_estimated_usage() -> None:
    steps = answer(["one ", "two ", "three"])[:3] + [ProviderStreamError("dropped")]
    chat, _ = service(ScriptedProvider(steps=steps))

    outcome, sink = await run(chat)

    evs = events(sink)
    assert evs[-1] == {
        "type": "error",
        "message": user_message("provider_stream_error"),
        "code": "provider_stream_error",
    }
    record = chat.store.finished[0]  # type: ignore[attr-defined]
    assert record.status == "partial" and record.content == "one two "
    (row,) = record.usage_rows
    assert row.usage.estimated and row.usage.input_tokens == 100
    assert row.usage.output_tokens == max(2, estimate_tokens("one two "))
    assert row.status == "partial"
    assert outcome.error is not None


async def test_turn_refused_before_head_stores_no_usage_but_closes_the_turn() -> None:
    chat, spool = service(ScriptedProvider(head=ProviderUnavailable("529 overloaded")))

    outcome, sink = await run(chat)

    assert events(sink)[-1]["type"] == "error"
    # One finish with nothing in it: it closes the turn, so it is never billed as abandoned.
    (record,) = chat.store.finished  # type: ignore[attr-defined]
    assert record.usage_rows == () and record.message_id is None
    assert outcome.record.usage_rows == () and outcome.record.message_id is None
    assert spool.spooled == []


async def test_turn_falls_back_before_first_token_and_records_only_billed_attempts() -> None:
    primary = ScriptedProvider(head=ProviderUnavailable("500"))
    fallback = ScriptedProvider(name="openai", steps=answer(["ok"]))
    chat, _ = service(primary, fallback)

    outcome, sink = await run(chat)

    assert [e["type"] for e in events(sink)] == ["token", "done"]
    (row,) = chat.store.finished[0].usage_rows  # type: ignore[attr-defined]
    assert row.provider == "openai" and row.attempt_id != TURN.turn_id
    assert fallback.requests[0].model == "model-1"
    assert outcome.error is None


async def test_turn_billed_failure_before_first_token_falls_back_with_two_usage_rows() -> None:
    primary = ScriptedProvider(
        steps=[UsageReport(Usage(input_tokens=50), "m-0"), ProviderUnavailable("overloaded")]
    )
    fallback = ScriptedProvider(name="openai", steps=answer(["ok"]))
    chat, _ = service(primary, fallback)

    await run(chat)

    rows = chat.store.finished[0].usage_rows  # type: ignore[attr-defined]
    assert [(r.provider, r.status) for r in rows] == [
        ("anthropic", "error"),
        ("openai", "completed"),
    ]
    assert rows[0].attempt_id != rows[1].attempt_id and rows[0].usage.input_tokens == 50


async def test_turn_never_falls_back_after_the_first_token() -> None:
    primary = ScriptedProvider(steps=answer(["a"])[:2] + [ProviderUnavailable("late")])
    fallback = ScriptedProvider(name="openai", steps=answer(["b"]))
    chat, _ = service(primary, fallback)

    outcome, sink = await run(chat)

    assert fallback.opened == 0
    assert [e["type"] for e in events(sink)] == ["token", "error"]
    assert outcome.record.status == "partial"


async def test_turn_head_that_never_arrives_fails_within_the_availability_budget() -> None:
    chat, _ = service(ScriptedProvider(head=30.0), llm_availability_budget=0.3)
    loop = asyncio.get_running_loop()
    began = loop.time()

    outcome, sink = await run(chat)

    assert loop.time() - began < 1.0
    assert events(sink)[-1]["code"] == "provider_timeout"
    assert outcome.record.usage_rows == ()


async def test_turn_hanging_primary_leaves_time_for_the_fallback_within_budget() -> None:
    primary = ScriptedProvider(head=30.0)
    fallback = ScriptedProvider(name="openai", steps=answer(["saved"]))
    chat, _ = service(primary, fallback, llm_availability_budget=0.6)
    loop = asyncio.get_running_loop()
    began = loop.time()

    outcome, sink = await run(chat)

    assert loop.time() - began < 0.9
    assert [e["type"] for e in events(sink)] == ["token", "done"]
    assert outcome.record.content == "saved"


async def test_turn_stall_mid_stream_errors_after_idle_timeout_with_partial_usage() -> None:
    steps = answer(["a", "b"])[:3] + [60.0]
    provider = ScriptedProvider(steps=steps)
    chat, _ = service(provider, llm_idle_timeout=0.2)

    outcome, sink = await run(chat)

    assert events(sink)[-1]["code"] == "provider_timeout"
    record = chat.store.finished[0]  # type: ignore[attr-defined]
    assert record.status == "partial" and record.content == "ab"
    assert record.usage_rows[0].usage.estimated
    assert provider.closed == 1


async def test_turn_client_gone_stops_upstream_and_keeps_partial_usage() -> None:
    provider = ScriptedProvider(steps=answer(["a", "b", "c", "d"]))
    chat, _ = service(provider)

    outcome, sink = await run(chat, Sink(gone_after=2))

    assert outcome.disconnected and provider.closed == 1
    record = chat.store.finished[0]  # type: ignore[attr-defined]
    assert record.status == "partial" and record.content == "abc"  # "c" was read, not delivered
    assert record.usage_rows[0].usage.estimated


async def test_turn_cancelled_by_disconnect_persists_before_propagating() -> None:
    provider = ScriptedProvider(steps=answer(["a", "b"])[:3] + [60.0])
    store = MemoryStore()
    chat, _ = service(provider, store=store, llm_idle_timeout=120.0)
    sink = Sink()
    ctx = await chat.begin(CALLER, TURN)
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(drive(chat.open(CALLER, TURN, ctx, started=loop.time()), sink))
    while len(sink.chunks) < 2:  # noqa: ASYNC110 - polling the sink is the point
        await asyncio.sleep(0.01)

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert provider.closed == 1
    (record,) = store.finished
    assert record.status == "partial" and record.content == "ab"
    assert record.usage_rows[0].status == "partial"


async def test_turn_final_write_retries_then_spools_without_losing_the_done_event() -> None:
    store = MemoryStore(fail_finish=[StoreError("down")] * 10)
    chat, spool = service(ScriptedProvider(steps=answer(["x"])), store=store, finish_retries=2)

    outcome, sink = await run(chat)

    assert store.finish_calls == 3
    assert outcome.spooled and spool.spooled[0][0] == CALLER.user_id
    assert events(sink)[-1]["type"] == "done"
    assert events(sink)[-1]["messageId"] == spool.spooled[0][1].message_id


async def test_turn_expired_token_at_finish_spools_at_once() -> None:
    store = MemoryStore(fail_finish=[AuthError("PGRST303 JWT expired")])
    chat, spool = service(ScriptedProvider(steps=answer(["x"])), store=store)

    outcome, _ = await run(chat)

    assert store.finish_calls == 1 and outcome.spooled and len(spool.spooled) == 1


def test_trim_history_drops_leading_assistant_turns() -> None:
    history = (
        ChatMessage("assistant", "earlier answer"),
        ChatMessage("user", "q"),
        ChatMessage("assistant", "a"),
        ChatMessage("user", "q2"),
    )
    assert trim_history(history) == history[1:]


FAMILY = (
    "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466"  # one ZWJ emoji, 7 code points
)


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("", 0),
        ("a", 1),
        ("abcd", 4),
        ("\u4f60\u597d", 6),  # CJK: 3 bytes a character
        ("e\u0301", 3),  # a combining mark
        (FAMILY, 25),
    ],
)
def test_estimate_tokens_counts_utf8_bytes(text: str, tokens: int) -> None:
    assert estimate_tokens(text) == tokens


@given(st.text())
def test_estimate_tokens_is_never_below_one_token_per_code_point(text: str) -> None:
    # Byte-level BPE makes every token of at least one byte, and no tokenizer makes fewer than
    # one token per ~4 bytes either way: the bytes bound what any provider bills for the text.
    assert estimate_tokens(text) >= len(text)
    assert estimate_tokens(text) == len(text.encode("utf-8", "surrogatepass"))


async def test_begin_always_reserves_the_worst_case_with_caps_from_settings() -> None:
    off, _ = service(ScriptedProvider())
    on, _ = service(
        ScriptedProvider(),
        daily_budget_usd=Decimal("5"),
        llm_max_tokens=100,
        history_token_budget=1000,
        system_prompt="x" * 40,
    )

    await off.begin(CALLER, TURN)
    await on.begin(CALLER, TURN)

    (unguarded,) = off.store.terms  # type: ignore[attr-defined]
    assert unguarded.caps.daily_usd == 0  # no cap, but the turn still holds its reservation
    (terms,) = on.store.terms  # type: ignore[attr-defined]
    assert terms.caps.daily_usd == Decimal("5") and terms.caps.rate_per_minute == 0
    # history budget + system prompt (40 bytes) + "hi" (2) input, plus every output token
    assert terms.reservation.usd == Decimal(1000 + 40 + 2 + 100) / Decimal(1_000_000)
    # a dead worker's turn is billed at the primary model's rates ($1/M here)
    assert terms.reservation.input_usd_per_mtok == Decimal(1)
    assert terms.reservation.output_usd_per_mtok == Decimal(1)
    assert terms.reservation.system_tokens == 40


async def test_turn_with_guards_releases_the_reservation_even_when_nothing_was_billed() -> None:
    chat, _ = service(ScriptedProvider(head=ProviderUnavailable("down")), rate_limit_per_minute=10)

    outcome, _ = await run(chat)

    assert chat.store.finish_calls == 1  # type: ignore[attr-defined]
    assert outcome.record.usage_rows == () and outcome.record.message_id is None
