"""The LLM stand-in's knobs: speed and faults, chosen per request.

Precedence, highest first: request headers `x-standin-<knob>` (direct tests), a directive in the
last user message such as `[[standin fault=drop after=5 tokens=40 delay_ms=5]]` (end-to-end tests
and load runs through the real service, which only forwards the conversation), then the defaults
the app was created with (`create_app(defaults)`, CLI flags, or `LLM_STANDIN_<KNOB>` variables).

Faults:
    refuse     close the connection without any response
    <status>   an error response with the API's JSON shape: 400 401 403 404 413 429 500 503 529
    hang       never send the response head (until the client leaves or `hold_s` passes)
    stall      stop after `after` tokens, keep the connection open (same bound)
    drop       close the connection after `after` tokens, mid-body
    error      an `error` event after `after` tokens (Anthropic `overloaded_error`)
    malformed  an event with broken JSON after `after` tokens, then carry on
    truncate   end the body cleanly after `after` tokens, without the terminal event
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

STATUS_FAULTS = frozenset({"400", "401", "403", "404", "413", "429", "500", "503", "529"})
STREAM_FAULTS = frozenset({"stall", "drop", "error", "malformed", "truncate"})
FAULTS = frozenset({"none", "refuse", "hang"}) | STATUS_FAULTS | STREAM_FAULTS

HEADER_PREFIX = "x-standin-"
ENV_PREFIX = "LLM_STANDIN_"
_DIRECTIVE = re.compile(r"\[\[standin((?:\s+[A-Za-z_-]+=[^\s\]]+)*)\s*\]\]")
_PAIR = re.compile(r"([A-Za-z_-]+)=([^\s\]]+)")


class KnobError(ValueError):
    """A knob with an unknown name or a value of the wrong kind (answered with a 400)."""


@dataclass(frozen=True)
class Knobs:
    tokens: int = 60  # text tokens in the answer (capped by the request's max_tokens)
    head_ms: float = 0.0  # delay before the response head
    ttft_ms: float = 0.0  # delay between the head and the first text token
    delay_ms: float = 0.0  # delay between text tokens
    fault: str = "none"
    after: int = 0  # tokens sent before a mid-stream fault
    retry_after: int = 1  # seconds, on 429 / 529
    hold_s: float = 300.0  # how long `hang` and `stall` hold the connection at most
    cache_read: int | None = None  # force the reported cache-read tokens
    cache_write: int | None = None  # force the reported cache-write tokens
    cost: float | None = None  # OpenAI wire: report `usage.cost` (USD) as OpenRouter does

    def replace(self, pairs: Iterable[tuple[str, str]]) -> Knobs:
        """A copy with `name=value` pairs applied (names as in headers or directives)."""
        changes: dict[str, Any] = {}
        for raw_name, raw_value in pairs:
            name = raw_name.strip().lower().replace("-", "_")
            changes[name] = _convert(name, raw_value.strip())
        return dataclasses.replace(self, **changes) if changes else self


_FIELDS = {f.name: f for f in dataclasses.fields(Knobs)}


def _convert(name: str, value: str) -> object:
    field = _FIELDS.get(name)
    if field is None:
        raise KnobError(f"standin: unknown knob {name!r}")
    if name == "fault":
        if value not in FAULTS:
            raise KnobError(f"standin: unknown fault {value!r} (one of {sorted(FAULTS)})")
        return value
    try:
        number = float(value)
    except ValueError:
        raise KnobError(f"standin: knob {name} wants a number, got {value!r}") from None
    if number < 0:
        raise KnobError(f"standin: knob {name} must not be negative")
    return number if str(field.type).startswith("float") else int(number)


def from_headers(knobs: Knobs, headers: Mapping[str, str]) -> Knobs:
    pairs = [
        (k[len(HEADER_PREFIX) :], v) for k, v in headers.items() if k.startswith(HEADER_PREFIX)
    ]
    return knobs.replace(pairs)


def from_directive(knobs: Knobs, text: str) -> Knobs:
    """Apply the last `[[standin ...]]` directive found in `text`, if any."""
    if "[[standin" not in text:
        return knobs
    found = _DIRECTIVE.findall(text)
    if not found:
        return knobs
    return knobs.replace(_PAIR.findall(found[-1]))


def from_env(environ: Mapping[str, str], base: Knobs | None = None) -> Knobs:
    """Defaults from `LLM_STANDIN_TOKENS=…`-style variables (for `make run` and the gateway)."""
    pairs = [
        (k[len(ENV_PREFIX) :], v) for k, v in environ.items() if k.startswith(ENV_PREFIX) and v
    ]
    return (base or Knobs()).replace(pairs)


def resolve(defaults: Knobs, headers: Mapping[str, str], last_user_text: str) -> Knobs:
    """Defaults, then the directive, then the headers: the most specific source wins."""
    return from_headers(from_directive(defaults, last_user_text), headers)
