"""What the LLM stand-in reads from a request and what it answers: token estimates, the prompt cut
into cacheable segments (the cache itself is `app.local.llm.cache`), and a deterministic coaching
answer cut into word-sized tokens.

Token counts are estimates (about four characters a token, a few tokens of framing per message),
close enough for usage rows and cost tests to look like production.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

COACHING_ANSWER = """\
That sounds like a lot to carry, and I'm glad you brought it here. Let's slow down for a moment \
and look at what matters most to you right now.

When you picture the week going well, what is one small thing that would be different? It \
doesn't have to be big. Often the first step is simply noticing where your energy goes.

Here is a gentle idea: pick one ten-minute window tomorrow and protect it for yourself. Write \
down what you did with it and how it felt. We can look at it together next time.

You've already shown real commitment by reflecting on this. What feels like a realistic next \
step, and what might get in the way? Naming the obstacle early makes it easier to plan around it.

Remember that progress is rarely a straight line. Be as kind to yourself as you would be to a \
good friend in the same spot, and celebrate the small wins along the way.
"""

TOKEN_CHARS = 4  # like real BPE tokens of English text, which average about four characters


def _pieces(word: str) -> list[str]:
    """A word-ish chunk split into tokens of at most TOKEN_CHARS characters.

    Real tokens are about four characters long; with longer ones, a service that estimates
    unreported output as characters / 4 would over-count this stand-in's billing.
    """
    return [word[i : i + TOKEN_CHARS] for i in range(0, len(word), TOKEN_CHARS)]


_WORDS = re.findall(r"\s*[\w']+|\s*[^\w\s]+", "\n\n" + COACHING_ANSWER.strip())
_BASE = tuple(piece for word in _WORDS for piece in _pieces(word))
_STARTS = tuple(i for i, t in enumerate(_BASE) if i == 0 or _BASE[i - 1].endswith((".", "?", "!")))
# The answer's word-sized tokens, then each sentence opener again without its leading space.
ANSWER_TOKENS: tuple[str, ...] = _BASE + tuple(_BASE[i].lstrip() for i in _STARTS)


def estimate_tokens(text: str) -> int:
    return (len(text) + 3) // 4


def text_of(content: Any) -> str:
    """The text of a message `content`: a string, or a list of text blocks / parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def last_user_text(messages: Sequence[Any]) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return text_of(message.get("content"))
    return ""


def answer_tokens(seed_text: str, count: int) -> list[int]:
    """Indices into ANSWER_TOKENS: `count` tokens from a sentence chosen by the question."""
    if count <= 0:
        return []
    choice = zlib.crc32(seed_text.encode()) % len(_STARTS)
    start, n = _STARTS[choice], len(_BASE)
    return [n + choice] + [(start + i) % n for i in range(1, count)]


@dataclass(frozen=True)
class PromptUsage:
    """Input tokens as Anthropic partitions them: uncached, cache read, cache write."""

    input_tokens: int
    cache_read: int = 0
    cache_write: int = 0

    @property
    def prompt_tokens(self) -> int:
        return self.input_tokens + self.cache_read + self.cache_write


@dataclass(frozen=True)
class Segment:
    """One cacheable unit of the prompt (a system block or a message) and its token estimate."""

    text: str
    tokens: int
    breakpoint: bool = False  # carries `cache_control`


def anthropic_segments(body: dict[str, Any]) -> list[Segment]:
    segments: list[Segment] = []
    system = body.get("system")
    blocks = system if isinstance(system, list) else ([{"text": system}] if system else [])
    for block in blocks:
        if isinstance(block, dict):
            text = str(block.get("text", ""))
            segments.append(Segment(text, estimate_tokens(text) + 1, "cache_control" in block))
    for message in body.get("messages") or ():
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        marked = isinstance(content, list) and any(
            isinstance(b, dict) and "cache_control" in b for b in content
        )
        text = f"{message.get('role')}:{text_of(content)}"
        segments.append(Segment(text, estimate_tokens(text) + 4, marked))
    if body.get("cache_control") and segments:  # automatic caching: up to the last message
        segments[-1] = Segment(segments[-1].text, segments[-1].tokens, True)
    return segments


def openai_segments(body: dict[str, Any]) -> list[Segment]:
    segments = []
    for message in body.get("messages") or ():
        if isinstance(message, dict):
            text = f"{message.get('role')}:{text_of(message.get('content'))}"
            segments.append(Segment(text, estimate_tokens(text) + 4))
    return segments


def forced(usage: PromptUsage, cache_read: int | None, cache_write: int | None) -> PromptUsage:
    """Apply the `cache_read` / `cache_write` knobs, keeping the prompt's total."""
    if cache_read is None and cache_write is None:
        return usage
    read = usage.cache_read if cache_read is None else cache_read
    write = usage.cache_write if cache_write is None else cache_write
    total = max(usage.prompt_tokens, read + write + 1)
    return PromptUsage(input_tokens=total - read - write, cache_read=read, cache_write=write)
