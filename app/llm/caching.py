"""Prompt-caching policy on the wire: which Anthropic form to send, and OpenAI's cache key.

Anthropic (`LLM_PROMPT_CACHE`):

- `auto`: automatic caching, one top-level `"cache_control": {"type": "ephemeral"}`; the API puts
  the breakpoint on the last cacheable block and moves it forward as the conversation grows. Sent
  where the API version supports it (the Messages API, `anthropic-version: 2023-06-01`); gateways
  that speak another version (Bedrock's `bedrock-2023-05-31`, Vertex's `vertex-2023-10-16`) get
  explicit breakpoints instead.
- `explicit`: `cache_control` on the system prompt block and on the last message's last block (two
  of the four breakpoints a request may carry).
- `off`: nothing.

OpenAI caches prompts of 1,024+ tokens by itself; `prompt_cache_key` routes a conversation's
requests to the same cache. It is a hash of the conversation id, never the id itself.
"""

from __future__ import annotations

import hashlib
from typing import Literal

PromptCache = Literal["auto", "explicit", "off"]
AnthropicCache = Literal["automatic", "explicit", "off"]
EPHEMERAL = {"type": "ephemeral"}
# Versions of the Messages API known to accept the top-level `cache_control`.
AUTOMATIC_CACHING_VERSIONS = frozenset({"2023-06-01"})
_KEY_CONTEXT = b"chat-stream:prompt-cache:"


def anthropic_cache(mode: PromptCache, api_version: str) -> AnthropicCache:
    """The form an Anthropic request takes under `mode` for this API version."""
    if mode == "off":
        return "off"
    if mode == "auto" and api_version in AUTOMATIC_CACHING_VERSIONS:
        return "automatic"
    return "explicit"


def cache_key(conversation_id: str) -> str:
    """A stable, opaque key for one conversation: 32 hex digits of SHA-256, no raw id."""
    return hashlib.sha256(_KEY_CONTEXT + conversation_id.encode()).hexdigest()[:32]
