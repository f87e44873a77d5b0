"""Plain types shared by the use case and the adapters. No I/O, no framework imports."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

Role = Literal["user", "assistant", "system"]
TurnStatus = Literal["completed", "partial", "error"]


@dataclass(frozen=True)
class Caller:
    """A verified end user: their id, their raw access token (for RLS), and its claims."""

    user_id: str
    token: str
    claims: Mapping[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:  # never print the token
        return f"Caller(user_id={self.user_id!r})"


@dataclass(frozen=True)
class ChatMessage:
    role: Role
    content: str


@dataclass(frozen=True)
class Usage:
    """Token counts as billed. `input_tokens` excludes cache reads and writes (partitions).

    Anthropic reports it that way; for OpenAI the adapter subtracts cached tokens from
    `prompt_tokens`, so every token is priced exactly once.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    estimated: bool = False

    @property
    def prompt_tokens(self) -> int:
        """All input tokens, cached or not (the `prompt_tokens` of the done event)."""
        return self.input_tokens + self.cache_read_tokens + self.cache_write_tokens

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.output_tokens


@dataclass(frozen=True)
class Price:
    cost_usd: Decimal
    source: str  # e.g. "genai-prices@0.2.3", "override:prices.json", "fallback"
    known_model: bool = True


# --- Provider stream events ---------------------------------------------------------------------
@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class UsageReport:
    """Usage as the provider reported it so far (Anthropic sends input first, output last)."""

    usage: Usage
    model: str | None = None
    provider_cost_usd: Decimal | None = None  # what the provider says it charged (OpenRouter)


ProviderEvent = TextDelta | UsageReport


# --- Turn events: what the use case yields to the edge (which alone knows the wire) ------------
@dataclass(frozen=True)
class Done:
    """The turn ended and is stored (or spooled): the stored message id and the answer's usage."""

    message_id: str | None
    usage: Usage
    replayed: bool = False  # a retry answered from the database; no provider call
    stopped: bool = False  # its user stopped it: the answer so far, stored as partial


@dataclass(frozen=True)
class Failed:
    """The turn ended in an error the client can act on; partial work is stored all the same."""

    code: str
    user_message: str


TurnEvent = TextDelta | Done | Failed


@dataclass(frozen=True)
class Expired:
    """A resume came too late to replay the answer event by event (past the retention, cut
    short, or abandoned): the stored answer, if any, instead of the rest of the events."""

    message_id: str | None
    content: str | None


ResumeEvent = TurnEvent | Expired  # what a resumed turn yields


@dataclass(frozen=True)
class CompletionRequest:
    model: str
    system: str
    messages: tuple[ChatMessage, ...]
    max_tokens: int
    temperature: float
    user_id: str | None = None  # forwarded as metadata for abuse tracking, never content
    conversation_id: str | None = None  # adapters send only a hash of it (a prompt-cache key)


# --- Store ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TurnStart:
    """The user's turn as accepted by the API. `turn_id` is made by the service, never the user."""

    conversation_id: str
    content: str
    client_message_id: str | None
    turn_id: str


@dataclass(frozen=True)
class Caps:
    """The service's default guards (0 = off); a user's `user_limits` row wins in the database."""

    daily_usd: Decimal = Decimal(0)
    monthly_usd: Decimal = Decimal(0)
    rate_per_minute: int = 0
    max_streams: int = 0


@dataclass(frozen=True)
class Reservation:
    """What a turn holds from begin to finish: its worst-case cost against the budgets, and what
    it is billed at if its worker dies (the estimated prompt at this model's input rate)."""

    usd: Decimal
    provider: str
    model: str
    input_usd_per_mtok: Decimal
    system_tokens: int
    lease_seconds: int


@dataclass(frozen=True)
class TurnTerms:
    """Everything `begin` decides with, all from settings: no user can choose any of it."""

    reservation: Reservation
    caps: Caps
    history_tokens: int
    history_messages: int


@dataclass(frozen=True)
class StoredAnswer:
    id: str
    content: str


@dataclass(frozen=True)
class TurnContext:
    """What `begin` returns: the history window, oldest first, or a stored answer to replay."""

    history: tuple[ChatMessage, ...]
    answer: StoredAnswer | None = None  # a retry of a turn already answered: send this back


@dataclass(frozen=True)
class UsageRow:
    """One billed upstream attempt (a fallback after a billed failure makes two)."""

    attempt_id: str
    provider: str
    model: str
    usage: Usage
    price: Price
    status: TurnStatus
    ttft_ms: int | None
    duration_ms: int
    provider_cost_usd: Decimal | None = None  # as reported on the wire; None: not reported


@dataclass(frozen=True)
class TurnRecord:
    """Everything `finish` stores in one round trip: the assistant message and the usage rows."""

    turn_id: str
    conversation_id: str
    message_id: str | None  # pre-generated; None when nothing was generated (no assistant row)
    content: str
    status: TurnStatus
    usage_rows: tuple[UsageRow, ...]
    # For a resume on any worker: the answer's token boundaries and the final event it got.
    token_lengths: tuple[int, ...] = ()
    final: Done | Failed | None = None

    @property
    def cost_usd(self) -> Decimal:
        return sum((row.price.cost_usd for row in self.usage_rows), Decimal(0))


@dataclass(frozen=True)
class TurnProgress:
    """A turn as the database knows it, for a resume on a worker that is not producing it."""

    state: Literal["streaming", "finished", "abandoned"]
    age_seconds: float
    parts: tuple[str, ...]  # tokens after the resume point, checkpointed while no client listens
    token_lengths: tuple[int, ...] | None  # at finish: the answer's token boundaries
    final: Done | Failed | None
    message_id: str | None
    content: str | None  # the stored answer, once finished


@dataclass(frozen=True)
class TurnSignals:
    """What a producing worker learns back with each checkpoint."""

    followed: bool = False  # a worker elsewhere follows the turn: keep going past the grace
    stop: bool = False  # its user asked to stop it (maybe on another worker)


@dataclass(frozen=True)
class FinishResult:
    message_id: str | None
    usage_ids: tuple[int, ...] = ()
