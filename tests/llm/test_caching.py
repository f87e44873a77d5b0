"""Prompt caching on the wire: the Anthropic forms (automatic, explicit, off) as the official SDK
sends them, OpenAI's `prompt_cache_key`, the factory's choice by setting and API version, and a
second turn read from the stand-in's cache through the real adapter."""

from __future__ import annotations

import json
import uuid
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from app.core.domain import ChatMessage, CompletionRequest, UsageReport
from app.llm import anthropic as anthropic_adapter
from app.llm import openai as openai_adapter
from app.llm.anthropic import AnthropicProvider
from app.llm.caching import anthropic_cache, cache_key
from app.llm.factory import build_providers
from app.llm.openai import OpenAIProvider
from tests.support.database import make_settings
from tests.support.llm_standin import ProviderOpener, StandinServer

CONVERSATION = "7d1f7c52-3b7e-4a55-9a0e-2f3c1d9e8b10"
LONG_SYSTEM = "You are a warm coach who listens closely and asks one question at a time. " * 80


def _request(system: str = "You are a warm coach.") -> CompletionRequest:
    return CompletionRequest(
        model="claude-sonnet-4-6",
        system=system,
        messages=(
            ChatMessage("user", "I keep putting things off."),
            ChatMessage("assistant", "What is one thing you put off today?"),
            ChatMessage("user", "The gym."),
        ),
        max_tokens=256,
        temperature=0.5,
        user_id="5f0c7a4e-0000-4000-8000-000000000001",
        conversation_id=CONVERSATION,
    )


def _captured(send: Any) -> dict[str, Any]:
    """The JSON body an official SDK sends, captured by a transport that answers 400 (the SDKs
    run on httpx2, the fork they ship with)."""
    seen: list[bytes] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request.content)
        return httpx2.Response(400, json={"type": "error", "error": {"type": "x", "message": "x"}})

    with (
        httpx2.Client(transport=httpx2.MockTransport(handler)) as http,
        pytest.raises((anthropic.APIStatusError, openai.APIStatusError)),
    ):
        send(http)
    body: dict[str, Any] = json.loads(seen[0])
    return body


def _sdk_anthropic(**extra: Any) -> dict[str, Any]:
    request = _request()

    def send(http: httpx2.Client) -> None:
        client = anthropic.Anthropic(api_key="k", http_client=http, max_retries=0)
        client.messages.create(
            model=request.model,
            max_tokens=request.max_tokens,
            metadata={"user_id": request.user_id},
            # this SDK release has no `temperature` parameter; the adapter still sends it
            extra_body={"temperature": request.temperature},
            stream=True,
            **extra,
        )

    return _captured(send)


def test_anthropic_payload_automatic_matches_the_sdk_top_level_cache_control() -> None:
    request = _request()
    messages = [{"role": m.role, "content": m.content} for m in request.messages]
    ours = anthropic_adapter.payload(request, cache="automatic")
    sdk = _sdk_anthropic(
        system=request.system, messages=messages, cache_control={"type": "ephemeral"}
    )
    assert ours == sdk
    assert ours["cache_control"] == {"type": "ephemeral"}
    assert ours["system"] == request.system  # the text is untouched: one marker, at the top


def test_anthropic_payload_explicit_marks_system_and_last_block_like_the_sdk() -> None:
    request = _request()
    ours = anthropic_adapter.payload(request, cache="explicit")
    mark = {"type": "ephemeral"}
    sdk = _sdk_anthropic(
        system=[{"type": "text", "text": request.system, "cache_control": mark}],
        messages=[
            {"role": "user", "content": "I keep putting things off."},
            {"role": "assistant", "content": "What is one thing you put off today?"},
            {
                "role": "user",
                "content": [{"type": "text", "text": "The gym.", "cache_control": mark}],
            },
        ],
    )
    assert ours == sdk
    assert "cache_control" not in ours


def test_anthropic_payload_off_carries_no_cache_control_anywhere() -> None:
    body = anthropic_adapter.payload(_request(), cache="off")
    assert "cache_control" not in json.dumps(body)
    assert body == anthropic_adapter.payload(_request())


@pytest.mark.parametrize(
    ("mode", "version", "form"),
    [
        ("auto", "2023-06-01", "automatic"),
        ("auto", "bedrock-2023-05-31", "explicit"),
        ("explicit", "2023-06-01", "explicit"),
        ("off", "2023-06-01", "off"),
    ],
)
def test_anthropic_cache_form_follows_mode_and_api_version(
    mode: Any, version: str, form: str
) -> None:
    assert anthropic_cache(mode, version) == form


@pytest.mark.anyio
async def test_build_providers_default_is_automatic_caching_and_openai_gets_the_mode() -> None:
    default = build_providers(make_settings())
    explicit = build_providers(make_settings(llm_prompt_cache="explicit"))
    gpt = build_providers(make_settings(llm_provider="openai", llm_prompt_cache="off"))
    try:
        assert isinstance(default.primary, AnthropicProvider)
        assert default.primary.cache == "automatic"
        assert isinstance(explicit.primary, AnthropicProvider)
        assert explicit.primary.cache == "explicit"
        assert isinstance(gpt.primary, OpenAIProvider) and gpt.primary.cache == "off"
    finally:
        for providers in (default, explicit, gpt):
            await providers.aclose()


def test_openai_payload_prompt_cache_key_is_a_stable_hash_never_the_raw_id() -> None:
    body = openai_adapter.payload(_request(), cache="auto")
    key = body["prompt_cache_key"]
    again = openai_adapter.payload(_request(), cache="explicit")["prompt_cache_key"]
    assert key == cache_key(CONVERSATION) == again
    assert CONVERSATION not in key and CONVERSATION.replace("-", "") not in key
    assert len(key) == 32 and cache_key("another") != key

    def send(http: httpx2.Client) -> None:
        client = openai.OpenAI(api_key="k", http_client=http, max_retries=0)
        client.chat.completions.create(
            model=body["model"],
            messages=body["messages"],
            stream=True,
            stream_options={"include_usage": True},
            max_completion_tokens=body["max_completion_tokens"],
            temperature=body["temperature"],
            safety_identifier=body["safety_identifier"],
            prompt_cache_key=key,
        )

    assert _captured(send) == body


def test_openai_payload_without_caching_or_for_compatible_servers_has_no_key() -> None:
    assert "prompt_cache_key" not in openai_adapter.payload(_request(), cache="off")
    compatible = openai_adapter.payload(_request(), official=False, cache="auto")
    assert "prompt_cache_key" not in compatible


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["auto", "explicit"])
async def test_anthropic_second_turn_reads_the_first_turns_prefix_from_the_standin(
    open_provider: ProviderOpener, standin_server: StandinServer, mode: str
) -> None:
    first = _request(LONG_SYSTEM + mode + str(uuid.uuid4()))  # a prefix no test sent before
    second = CompletionRequest(
        **{
            **first.__dict__,
            "messages": (
                *first.messages,
                ChatMessage("assistant", "What got in the way?"),
                ChatMessage("user", "Work ran late."),
            ),
        }
    )
    usages = []
    async with open_provider("anthropic", llm_prompt_cache=mode) as provider:
        for request in (first, second):
            async with provider.stream(request) as events:
                reports = [e async for e in events if isinstance(e, UsageReport)]
            usages.append(reports[-1].usage)
    assert usages[0].cache_read_tokens == 0 and usages[0].cache_write_tokens > 1024
    assert usages[1].cache_read_tokens == usages[0].cache_write_tokens
    assert usages[1].cache_write_tokens > 0  # the new tail, written for the next turn
    assert usages[1].input_tokens < 10  # only what follows the breakpoint is uncached
