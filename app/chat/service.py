"""ChatService: the terms of a turn, `begin` (the first round trip) and `open` (the stream)."""

from __future__ import annotations

from collections.abc import Callable

from app.chat.accounting import estimate_tokens
from app.chat.policy import ChatPolicy
from app.chat.relay import no_grace
from app.chat.turn import Turn, TurnParts
from app.core.domain import Caller, Reservation, TurnContext, TurnStart, TurnTerms
from app.core.ports import ChatStore, PriceBook, Provider, Spool


class ChatService:
    def __init__(
        self,
        *,
        policy: ChatPolicy,
        store: ChatStore,
        providers: list[tuple[Provider, str]],
        pricer: PriceBook,
        spool: Spool,
        head_grace: Callable[[], float] = no_grace,
    ) -> None:
        if not providers:
            raise ValueError("at least one provider is required")
        self.policy = policy
        self.store = store
        self._parts = TurnParts(policy, store, providers, pricer, spool, head_grace)

    def terms_for(self, turn: TurnStart) -> TurnTerms:
        """The terms `begin` decides with, all from the policy (a user's `user_limits` row wins in
        the database). The reservation is the worst case this turn could cost: a full history
        window and every output token on the dearest configured model. If the worker dies, the
        turn is billed at the primary model's rates on the estimated prompt and the output it last
        reported (upper bounds: UTF-8 bytes)."""
        p, pricer, providers = self.policy, self._parts.pricer, self._parts.providers
        system_tokens = estimate_tokens(p.system_prompt)
        input_bound = p.history_token_budget + system_tokens + estimate_tokens(turn.content)
        reserve = max(
            pricer.worst_case_cost(provider.name, model, input_bound, p.max_tokens)
            for provider, model in providers
        )
        primary, model = providers[0]
        return TurnTerms(
            reservation=Reservation(
                usd=reserve,
                provider=primary.name,
                model=model,
                input_usd_per_mtok=pricer.worst_case_cost(primary.name, model, 10**6, 0),
                output_usd_per_mtok=pricer.worst_case_cost(primary.name, model, 0, 10**6),
                system_tokens=system_tokens,
                lease_seconds=p.reservation_ttl_seconds,
            ),
            caps=p.caps,
            history_tokens=p.history_token_budget,
            history_messages=p.history_max_messages,
        )

    async def begin(self, caller: Caller, turn: TurnStart) -> TurnContext:
        """The first round trip: ownership, guards and reservation, user message, history.

        Errors here (404, 409, 429, 503) become JSON responses: nothing has been streamed yet.
        """
        return await self.store.begin(caller, turn, self.terms_for(turn))

    def open(
        self, caller: Caller, turn: TurnStart, context: TurnContext, *, started: float
    ) -> Turn:
        """The turn, ready to stream; `started` is the request's arrival on the loop clock."""
        return Turn(self._parts, caller, turn, context, started=started)
