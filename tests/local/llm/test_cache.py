"""The stand-in's prompt cache: Anthropic's prefix cache (breakpoints, lookback, 5-minute TTL
refreshed on hits, a per-model minimum), OpenAI's automatic cache keyed by `prompt_cache_key`,
and the ledger priced as the providers bill cache reads and writes."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import orjson
import pytest
from httpx_sse import connect_sse
from starlette.applications import Starlette
from starlette.routing import Mount

from app.local.llm.api import StandIn, create_app
from app.local.llm.cache import PrefixCache, min_tokens_for
from app.local.llm.knobs import Knobs
from app.local.llm.prompt import Segment, anthropic_segments
from app.local.postgres import free_port
from app.local.server import ServerThread

SYSTEM = "You are a patient coach who asks one question at a time. " * 100  # ~1,400 tokens
MARK = {"type": "ephemeral"}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _body(messages: list[dict[str, Any]], *, automatic: bool = True, system: str = SYSTEM) -> Any:
    body: dict[str, Any] = {"model": "claude-sonnet-4-6", "system": system, "messages": messages}
    if automatic:
        body["cache_control"] = MARK
    return body


def _turns(n: int) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        out.append({"role": "user", "content": f"question {i} " * 20})
        out.append({"role": "assistant", "content": f"answer {i} " * 40})
    return out


def test_cache_automatic_second_turn_reads_the_first_turn_and_writes_the_tail() -> None:
    cache = PrefixCache()
    first = _turns(2)[:3]
    second = _turns(3)[:5]
    one = cache.anthropic("claude-sonnet-4-6", anthropic_segments(_body(first)))
    two = cache.anthropic("claude-sonnet-4-6", anthropic_segments(_body(second)))
    assert (one.cache_read, one.input_tokens) == (0, 0) and one.cache_write > 1024
    assert two.cache_read == one.cache_write  # the whole previous prompt, from cache
    assert two.cache_write == two.prompt_tokens - one.prompt_tokens and two.input_tokens == 0


def test_cache_explicit_breakpoints_on_system_and_last_message() -> None:
    cache = PrefixCache()

    def explicit(messages: list[dict[str, Any]]) -> Any:
        body = _body(messages, automatic=False)
        body["system"] = [{"type": "text", "text": SYSTEM, "cache_control": MARK}]
        last = messages[-1]
        messages[-1] = {**last, "content": [{"type": "text", "text": last["content"]}]}
        messages[-1]["content"][0]["cache_control"] = MARK
        return body

    one = cache.anthropic("claude-sonnet-4-6", anthropic_segments(explicit(_turns(2)[:3])))
    two = cache.anthropic("claude-sonnet-4-6", anthropic_segments(explicit(_turns(3)[:5])))
    assert two.cache_read == one.prompt_tokens and two.input_tokens == 0
    other_question = _turns(3)[:4] + [{"role": "user", "content": "something else"}]
    three = cache.anthropic("claude-sonnet-4-6", anthropic_segments(explicit(other_question)))
    assert three.cache_read == one.prompt_tokens  # the lookback finds the shared part


def test_cache_one_changed_byte_early_misses_everything_after_it() -> None:
    cache = PrefixCache()
    cache.anthropic("claude-sonnet-4-6", anthropic_segments(_body(_turns(2)[:3])))
    changed = cache.anthropic(
        "claude-sonnet-4-6", anthropic_segments(_body(_turns(3)[:5], system=SYSTEM + "!"))
    )
    assert changed.cache_read == 0 and changed.cache_write == changed.prompt_tokens


def test_cache_entries_live_five_minutes_refreshed_by_each_hit() -> None:
    clock = Clock()
    cache = PrefixCache(clock=clock)
    segments = anthropic_segments(_body(_turns(1)[:1]))
    assert cache.anthropic("claude-sonnet-4-6", segments).cache_read == 0
    clock.now = 299.0
    assert cache.anthropic("claude-sonnet-4-6", segments).cache_read > 0  # refreshed to 599
    clock.now = 598.0
    assert cache.anthropic("claude-sonnet-4-6", segments).cache_read > 0  # refreshed to 898
    clock.now = 898.5
    assert cache.anthropic("claude-sonnet-4-6", segments).cache_read == 0  # expired: written anew


def test_cache_minimum_is_per_model_and_short_prefixes_are_silently_uncached() -> None:
    assert min_tokens_for("claude-sonnet-4-6") == 1024
    assert min_tokens_for("claude-haiku-4-5-20251001") == 4096
    assert min_tokens_for("claude-opus-5") == 512
    assert min_tokens_for("some-new-model") == 1024
    cache = PrefixCache()
    segments = [Segment("x" * 8000, 2000, breakpoint=True)]
    for _ in range(2):
        haiku = cache.anthropic("claude-haiku-4-5", segments)
    assert (haiku.input_tokens, haiku.cache_read, haiku.cache_write) == (2000, 0, 0)
    cache.anthropic("claude-sonnet-4-6", segments)
    assert cache.anthropic("claude-sonnet-4-6", segments).cache_read == 2000


def test_cache_openai_is_keyed_by_model_and_prompt_cache_key() -> None:
    cache = PrefixCache()
    long = [Segment("system:" + SYSTEM, 1400), Segment("user:hi", 6)]
    again = [long[0], Segment("user:hello", 7)]
    assert cache.openai("gpt-4o-mini", long, "k1").cache_read == 0
    assert cache.openai("gpt-4o-mini", again, "k2").cache_read == 0  # another key's cache
    hit = cache.openai("gpt-4o-mini", again, "k1")
    assert hit.cache_read == 1280 and hit.input_tokens == 1407 - 1280  # 128-token steps
    assert cache.openai("gpt-4o", again, "k1").cache_read == 0  # caches are per model


# --- over HTTP: the wire and the priced ledger ----------------------------------------------------
@pytest.fixture(scope="module")
def standin() -> Iterator[tuple[str, StandIn]]:
    app = create_app(Knobs(tokens=8))
    with ServerThread(Starlette(routes=[Mount("/llm", app)]), free_port()) as server:
        yield f"{server.url}/llm", app.state.standin


def _anthropic(url: str, body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    headers = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
    payload = {**body, "max_tokens": 64, "stream": True}
    with (
        httpx.Client() as client,
        connect_sse(client, "POST", f"{url}/v1/messages", json=payload, headers=headers) as src,
    ):
        return [(sse.event, orjson.loads(sse.data)) for sse in src.iter_sse()]


def test_standin_reports_cache_tokens_in_message_start_and_final_usage_and_prices_them(
    standin: tuple[str, StandIn],
) -> None:
    url, _ = standin
    system = SYSTEM + "priced"
    _anthropic(url, _body(_turns(2)[:3], system=system))
    events = _anthropic(url, _body(_turns(3)[:5], system=system))
    start = events[0][1]["message"]["usage"]
    final = events[-2][1]["usage"]
    assert start["cache_read_input_tokens"] > 1024 and start["cache_creation_input_tokens"] > 0
    for name in ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"):
        assert final[name] == start[name]
    ledger = httpx.get(f"{url}/_ledger").json()
    entry = ledger[-1]
    assert entry["cache_read_tokens"] == start["cache_read_input_tokens"]
    assert entry["cache_write_tokens"] == start["cache_creation_input_tokens"]
    # claude-sonnet-4-6: $3 input, reads 0.1x ($0.30), 5-minute writes 1.25x ($3.75) per Mtok.
    expected = (
        Decimal(entry["input_tokens"]) * 3
        + Decimal(entry["cache_read_tokens"]) * Decimal("0.30")
        + Decimal(entry["cache_write_tokens"]) * Decimal("3.75")
    ) / 1_000_000
    assert Decimal(entry["input_cost_usd"]) == expected.quantize(Decimal("0.00000001"))
    assert Decimal(entry["cost_usd"]) == (expected + Decimal(8 * 15) / 1_000_000).quantize(
        Decimal("0.00000001")
    )
    assert entry["price_source"].startswith("genai-prices")


def test_standin_openai_request_with_prompt_cache_key_reports_cached_tokens(
    standin: tuple[str, StandIn],
) -> None:
    url, _ = standin

    def usage(text: str, key: str) -> dict[str, Any]:
        body = {
            "model": "gpt-4o-mini",
            "stream": True,
            "stream_options": {"include_usage": True},
            "prompt_cache_key": key,
            "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}],
        }
        headers = {"authorization": "Bearer k"}
        with (
            httpx.Client() as client,
            connect_sse(
                client, "POST", f"{url}/v1/chat/completions", json=body, headers=headers
            ) as src,
        ):
            chunks = [sse.data for sse in src.iter_sse()]
        return dict(orjson.loads(chunks[-2])["usage"])

    assert usage("one", "conv-a")["prompt_tokens_details"]["cached_tokens"] == 0
    assert usage("two", "conv-b")["prompt_tokens_details"]["cached_tokens"] == 0
    cached = usage("three", "conv-a")["prompt_tokens_details"]["cached_tokens"]
    assert cached >= 1024 and cached % 128 == 0
    entry = httpx.get(f"{url}/_ledger").json()[-1]
    assert entry["cache_read_tokens"] == cached
    assert (
        Decimal(entry["input_cost_usd"])
        < Decimal(entry["input_tokens"] + cached) * Decimal("0.15") / 1_000_000
    )  # the cached part at OpenAI's discounted rate
