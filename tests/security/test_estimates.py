"""Token estimates are upper bounds (docs/design.md §3, §13), through the real endpoint: emoji,
CJK and combining marks cannot make the reservation, the history window or a turn's estimated
input smaller than what a tokenizer makes of them.

Real tokenizers produce at least one token per code point for such text (a ZWJ family emoji is 7
code points and 25 UTF-8 bytes; byte-level BPE makes no token of less than one byte), so the tests
hold every estimate to at least the code points it covers. The LLM stand-in counts about four
characters a token (its ledger measures how much text a prompt carried, not its tokens).
"""

from __future__ import annotations

import time

import pytest

from app.core.pricing import Pricer
from tests.security.data_api import BackgroundStream, settled_ledger, streaming_turns
from tests.support.chat_stack import ChatStack, stream

pytestmark = pytest.mark.slow

FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466"  # 7 code points, 25 bytes
CJK = "\u4f60\u597d"  # 2 code points, 6 bytes
COMBINING = "e\u0301"  # 2 code points, 3 bytes
# 7,000 code points and 25,000 bytes: over the default 6,000-token history budget either way.
HEAVY = FAMILY * 600 + CJK * 600 + COMBINING * 900


@pytest.mark.parametrize("text", [HEAVY])
def test_non_latin_text_is_reserved_windowed_and_estimated_at_no_less_than_its_code_points(
    chat_stack: ChatStack, text: str
) -> None:
    settings = chat_stack.settings
    assert len(text) <= settings.max_message_chars
    user = chat_stack.new_user()
    conv = user.conversation()
    message = text + " [[standin tokens=60 delay_ms=20]]"

    first = BackgroundStream(
        chat_stack.endpoint, user, {"message": message, "conversationId": conv}
    )
    first.wait_streaming()
    (turn_id,) = streaming_turns(chat_stack, user)
    ((reserve, input_estimate),) = chat_stack.rows(
        "select reserve_usd, input_tokens_estimate from private.turns where turn_id = %s", turn_id
    )
    first.join()
    assert first.last["type"] == "done"

    # The reservation's input bound and the turn's input estimate (what an abandoned turn is
    # billed) cover every code point of the system prompt and the message.
    floor = len(settings.system_prompt) + len(message)
    assert input_estimate >= floor
    pricer = Pricer(settings)
    bound = settings.history_token_budget + floor
    assert reserve >= pricer.worst_case_cost(
        settings.llm_provider, settings.llm_model, bound, settings.llm_max_tokens
    )

    # The history window: the heavy message alone is over the budget, so the next turn's prompt
    # does not carry it (the stand-in would have counted its ~7,000 characters).
    since = time.monotonic()
    second = stream(
        chat_stack, user, {"message": "and now? [[standin tokens=3]]", "conversationId": conv}
    )
    assert second.last["type"] == "done"
    (entry,) = settled_ledger(chat_stack, since, 1)
    sent = entry["input_tokens"] + entry["cache_read_tokens"] + entry["cache_write_tokens"]
    assert sent * 4 < len(text), "the window carried a message over the token budget"
