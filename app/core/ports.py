"""The use case's view of the outside world: Protocols the adapters implement."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from decimal import Decimal
from typing import Protocol

from app.core.domain import (
    Caller,
    CompletionRequest,
    FinishResult,
    Price,
    ProviderEvent,
    TurnContext,
    TurnProgress,
    TurnRecord,
    TurnSignals,
    TurnStart,
    TurnTerms,
    Usage,
)

SIGNALS_BATCH = 1000  # turns per `ChatStore.signals` call (the database refuses more)


class Provider(Protocol):
    """One LLM API. `stream()` is entered when the response head has arrived with 200.

    Entering raises `ProviderError` (refused, 4xx/5xx, 429, 529, connect failure); iterating yields
    `TextDelta`s and `UsageReport`s and raises `ProviderStreamError` on a dropped connection, an
    error event or a malformed event. Leaving the context closes the upstream connection at once,
    which is how a client disconnect stops the billing.
    """

    name: str  # "anthropic" | "openai" | "openai-compatible"

    def stream(
        self, request: CompletionRequest
    ) -> AbstractAsyncContextManager[AsyncIterator[ProviderEvent]]: ...


class ChatStore(Protocol):
    """Persistence, attested (docs/design.md §13): `begin` as the caller (their token checked
    once), the rest as the service. One round trip each."""

    async def begin(self, caller: Caller, turn: TurnStart, terms: TurnTerms) -> TurnContext:
        """Open the turn: ownership (NotFound), one answer per clientMessageId (Conflict), the
        guards (RateLimited/OverBudget) and the reservation, the user message, the history."""
        ...

    async def renew(
        self, caller: Caller, turn_id: str, lease_seconds: int, output_tokens: int | None = None
    ) -> bool:
        """Extend a streaming turn's lease, so it is not taken for a dead worker's; record the
        output streamed so far (an upper bound), which an abandoned turn is billed with."""
        ...

    async def finish(self, caller: Caller, record: TurnRecord) -> FinishResult:
        """Store the assistant message and the usage rows, close the turn; idempotent."""
        ...

    async def checkpoint(
        self,
        caller: Caller,
        turn_id: str,
        start: int,
        parts: list[str],
        output_tokens: int | None = None,
    ) -> TurnSignals:
        """Append tokens (maybe none) to a streaming turn's checkpoint, with the output streamed so
        far; whether another worker follows it and whether its user asked to stop it."""
        ...

    async def signals(self, turns: Sequence[tuple[str, str]]) -> dict[str, TurnSignals]:
        """For `(user_id, turn_id)` pairs (at most `SIGNALS_BATCH`), in one call: whether a worker
        elsewhere follows each turn and whether its user asked to stop it. The worker's stop poll
        for the turns its clients listen to; a pair that is not a turn of that user is left out."""
        ...

    async def stop(self, caller: Caller, turn_id: str) -> str | None:
        """Ask the caller's own turn to stop: its state ('streaming' when now asked), or None
        when it is not a turn of theirs."""
        ...

    async def progress(
        self, caller: Caller, turn_id: str, after: int, *, follow: bool = True
    ) -> TurnProgress | None:
        """The caller's own turn as stored (None: not theirs, or none); `follow` marks it
        followed (its producer keeps going), otherwise it is only read."""
        ...


class Spool(Protocol):
    """A durable place for a final write that could not reach the database; replayed later."""

    def spool(self, user_id: str, record: TurnRecord) -> None: ...


class PriceBook(Protocol):
    """What a turn is priced with: `app.core.pricing.Pricer` (overrides, genai-prices, fallback)."""

    def price(self, provider: str, model: str, usage: Usage) -> Price: ...

    def worst_case_cost(
        self, provider: str, model: str, input_tokens: int, max_output_tokens: int
    ) -> Decimal: ...
