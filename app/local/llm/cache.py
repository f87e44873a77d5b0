"""The stand-in's prompt cache, simulated the way the providers report it.

Anthropic: a prefix cache over the prompt's segments (system blocks, then messages) in order.
Each `cache_control` breakpoint (explicit, or the last block under automatic caching) writes the
prefix up to it; a request reads the longest prefix seen before that ends at most
`LOOKBACK_BLOCKS` segments before one of its breakpoints. Entries live `TTL_SECONDS` (5 minutes),
refreshed on each hit. A prefix shorter than the model's minimum (`min_tokens_for`) is not cached,
silently, as the API does. Usage: `input_tokens` = what follows the last cached breakpoint,
`cache_creation_input_tokens` = from the read prefix to it, `cache_read_input_tokens` = the read.

OpenAI: automatic for prompts of 1,024+ tokens, the longest seen prefix in 128-token steps, keyed
by model and `prompt_cache_key` (requests with the same key reach the same cache).
Keys chain a hash over the exact segment texts, so one changed byte misses everything after it.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence

from app.local.llm.prompt import PromptUsage, Segment

TTL_SECONDS = 300.0
LOOKBACK_BLOCKS = 20
OPENAI_MIN_TOKENS = 1024
OPENAI_CACHE_STEP = 128
DEFAULT_MIN_TOKENS = 1024
# Minimum cacheable prefix by model-name prefix (sources disagree; see the reference notes).
MIN_TOKENS_BY_MODEL: Mapping[str, int] = {
    "claude-opus-5": 512,
    "claude-haiku-4-5": 4096,
    "claude-opus-4-5": 4096,
    "claude-opus-4-6": 4096,
    "claude-sonnet-4-6": 1024,
    "claude-sonnet-4": 1024,
    "claude-opus-4": 1024,
}


def min_tokens_for(model: str, table: Mapping[str, int] = MIN_TOKENS_BY_MODEL) -> int:
    """The longest matching model-name prefix's minimum, else `DEFAULT_MIN_TOKENS`."""
    matches = [prefix for prefix in table if model.startswith(prefix)]
    return table[max(matches, key=len)] if matches else DEFAULT_MIN_TOKENS


class PrefixCache:
    """Prompt prefixes by hash chain with a TTL; bounded (LRU) so long load runs stay flat."""

    def __init__(
        self,
        max_entries: int = 20_000,
        *,
        ttl: float = TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        min_tokens: Mapping[str, int] = MIN_TOKENS_BY_MODEL,
    ) -> None:
        self._expires: OrderedDict[bytes, float] = OrderedDict()
        self._max, self._ttl, self._clock, self._min = max_entries, ttl, clock, min_tokens

    def _chain(self, namespace: str, segments: Sequence[Segment]) -> list[tuple[bytes, int]]:
        keys, digest, total = [], hashlib.blake2b(namespace.encode(), digest_size=16).digest(), 0
        for segment in segments:
            digest = hashlib.blake2b(digest + segment.text.encode(), digest_size=16).digest()
            total += segment.tokens
            keys.append((digest, total))
        return keys

    def _write(self, key: bytes) -> None:
        self._expires[key] = self._clock() + self._ttl
        self._expires.move_to_end(key)
        while len(self._expires) > self._max:
            self._expires.popitem(last=False)

    def _hit(self, key: bytes) -> bool:
        expires = self._expires.get(key)
        if expires is None:
            return False
        if expires <= self._clock():
            del self._expires[key]
            return False
        self._write(key)  # a hit refreshes the TTL
        return True

    def anthropic(self, model: str, segments: Sequence[Segment]) -> PromptUsage:
        total = sum(s.tokens for s in segments)
        chain = self._chain("anthropic:" + model, segments)
        minimum = min_tokens_for(model, self._min)
        breakpoints = [i for i, s in enumerate(segments) if s.breakpoint and chain[i][1] >= minimum]
        if not breakpoints:
            return PromptUsage(input_tokens=total)
        candidates = sorted(
            {j for i in breakpoints for j in range(max(0, i - LOOKBACK_BLOCKS), i + 1)},
            reverse=True,
        )
        read = next((chain[j][1] for j in candidates if self._hit(chain[j][0])), 0)
        for i in breakpoints:
            self._write(chain[i][0])
        cached = chain[breakpoints[-1]][1]
        return PromptUsage(input_tokens=total - cached, cache_read=read, cache_write=cached - read)

    def openai(self, model: str, segments: Sequence[Segment], key: str = "") -> PromptUsage:
        total = sum(s.tokens for s in segments)
        chain = self._chain(f"openai:{model}:{key}", segments)
        read = next((tokens for k, tokens in reversed(chain[:-1]) if self._hit(k)), 0)
        for k, _ in chain:
            self._write(k)
        read = read // OPENAI_CACHE_STEP * OPENAI_CACHE_STEP
        if total < OPENAI_MIN_TOKENS or read < OPENAI_MIN_TOKENS:
            read = 0
        return PromptUsage(input_tokens=total - read, cache_read=read)
