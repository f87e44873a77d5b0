"""ChatStore on Supabase: the Data API's RPCs (`store.data_api.DataApi`), attested.

A turn begins as the calling user (`chat_begin` with their token, so the database knows who asks):
that is where the user's token is checked, once. Everything the service records after that (lease
renewals, checkpoints, the finish, a follower's reads) it records as itself with the secret key,
so a turn that outlives its user's token keeps its lease and is stored at once (docs/design.md
§13). One `DataApi` per key (and one aiohttp pool) carries no user auth; a user's call passes their
token for that one request (`rpc(..., token=jwt)`), so no shared object ever holds it.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import aiohttp
from postgrest import APIError

from app.core.domain import (
    Caller,
    ChatMessage,
    FinishResult,
    StoredAnswer,
    TurnContext,
    TurnProgress,
    TurnRecord,
    TurnSignals,
    TurnStart,
    TurnTerms,
)
from app.errors import (
    AuthError,
    ClientMessageIdReused,
    Conflict,
    KeyRefused,
    NotFound,
    OverBudget,
    RateLimited,
    StoreError,
    StoreRejected,
)
from app.ops import tracing
from app.store.attestation import Attestor
from app.store.data_api import DataApi
from app.store.payloads import (
    begin_payload,
    final_from_json,
    finish_params,
    finish_result,
    upgrade_spooled,
)

logger = logging.getLogger(__name__)

_AUTH_CODES = {"PGRST301", "PGRST302", "PGRST303", "401"}
# What Supabase's gateway (Kong) answers for a wrong or missing `apikey`; it has no `code`.
_GATEWAY_KEY_REFUSALS = {"Invalid API key", "No API key found in request"}
_RETRY_AFTER = re.compile(r"retry_after=(\d+)")
_NOT_FOUND_CODES = {"PT404", "42501"}
_REUSED_HINT = "client_message_id_reused"
# SQLSTATE classes 22 (data exception) and 23 (integrity violation): the same write fails again.
_PERMANENT_CLASSES = {"22", "23"}
# A pooled keep-alive connection the server had closed: hung up, reset (a refused connect is an
# OSError too: retried once, at no cost), or cut mid-answer.
_DROPPED = (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError, aiohttp.ClientPayloadError)


@asynccontextmanager
async def _translate(operation: str, timeout: float) -> AsyncIterator[None]:  # noqa: ASYNC109
    """PostgREST/aiohttp failures → AppErrors; every call bounded by `timeout`."""
    try:
        async with asyncio.timeout(timeout):
            yield
    except APIError as exc:
        pgrst = str(exc.code or "")  # PostgREST's code or the SQLSTATE
        if not pgrst and exc.message in _GATEWAY_KEY_REFUSALS:
            raise KeyRefused(f"{operation}: the API gateway refused: {exc.message}") from exc
        if pgrst in _AUTH_CODES:
            raise AuthError(f"{operation}: {pgrst} {exc.message}") from exc
        if pgrst in _NOT_FOUND_CODES:
            raise NotFound(f"{operation}: {pgrst}") from exc
        if pgrst == "PT409":
            if exc.hint == _REUSED_HINT:
                raise ClientMessageIdReused(f"{operation}: {exc.message}") from exc
            raise Conflict(f"{operation}: {exc.message}") from exc
        if pgrst == "PT403":
            raise StoreError(
                f"{operation}: the database refused the attestation; is BILLING_ATTESTATION_KEY"
                " in private.attestation_keys?"
            ) from exc
        if pgrst == "PT429":
            match = _RETRY_AFTER.search(str(exc.details or ""))
            retry_after = int(match.group(1)) if match else 1
            kind = OverBudget if exc.hint == "over_budget" else RateLimited
            raise kind(f"{operation}: {exc.message}", retry_after=retry_after) from exc
        if pgrst[:2] in _PERMANENT_CLASSES:
            raise StoreRejected(f"{operation}: {pgrst} {exc.message}") from exc
        raise StoreError(f"{operation}: {pgrst} {exc.message}") from exc
    except TimeoutError as exc:
        raise StoreError(f"{operation}: timed out after {timeout}s") from exc
    except aiohttp.ClientError as exc:
        raise StoreError(f"{operation}: {type(exc).__name__}: {exc}") from exc
    except ValueError as exc:  # a non-JSON answer where JSON was expected
        raise StoreError(f"{operation}: unreadable answer: {exc}") from exc


class SupabaseChatStore:
    def __init__(
        self,
        data_api: DataApi,
        attestor: Attestor,
        *,
        service: DataApi | None = None,
        timeout: float = 2.5,
        budgets: dict[str, str] | None = None,
    ) -> None:
        self._shared = data_api
        # The alert thresholds from settings, attested with each finish (user_limits wins).
        self._budgets = budgets
        self._attestor = attestor
        self._service = service
        self._timeout = timeout

    async def begin(self, caller: Caller, turn: TurnStart, terms: TurnTerms) -> TurnContext:
        payload = begin_payload(caller, turn, terms, time.time())
        params = self._attestor.params("chat_begin", payload, field="p_turn")
        data = await self._rpc(self._shared, "chat_begin", params, token=caller.token)
        if not isinstance(data, dict) or "user_message_id" not in data:
            raise StoreError(f"chat_begin: unexpected answer {type(data).__name__}")
        history = tuple(
            ChatMessage(role=m["role"], content=m["content"]) for m in data.get("history") or ()
        )
        answer = data.get("answer")
        original = data.get("turn_id")
        return TurnContext(
            history=history,
            answer=StoredAnswer(str(answer["id"]), str(answer["content"]))
            if isinstance(answer, dict)
            else None,
            turn_id=str(original) if isinstance(answer, dict) and original else None,
        )

    async def renew(
        self, caller: Caller, turn_id: str, lease_seconds: int, output_tokens: int | None = None
    ) -> bool:
        payload: dict[str, Any] = {
            "v": 1,
            "iat": int(time.time()),
            "user_id": caller.user_id,
            "turn_id": turn_id,
            "lease_seconds": lease_seconds,
        }
        if output_tokens is not None:
            payload["output_tokens"] = output_tokens
        params = self._attestor.params("chat_renew", payload, field="p_turn")
        return bool(await self._rpc(self._service_client(), "chat_renew", params))

    async def finish(self, caller: Caller, record: TurnRecord) -> FinishResult:
        params = self._finish_params(finish_params(caller.user_id, record))
        return finish_result(await self._rpc(self._service_client(), "chat_finish", params))

    async def finish_as_service(self, spooled: dict[str, Any]) -> FinishResult:
        """Replay a spooled write with the service role (the user's token may have expired)."""
        service = self._service_client()
        params = self._finish_params(upgrade_spooled(spooled))
        return finish_result(await self._rpc(service, "chat_finish", params))

    async def checkpoint(
        self,
        caller: Caller,
        turn_id: str,
        start: int,
        parts: list[str],
        output_tokens: int | None = None,
    ) -> TurnSignals:
        payload: dict[str, Any] = {
            "v": 1,
            "iat": int(time.time()),
            "user_id": caller.user_id,
            "turn_id": turn_id,
            "from": start,
            "parts": parts,
        }
        if output_tokens is not None:
            payload["output_tokens"] = output_tokens
        params = self._attestor.params("chat_checkpoint_signals", payload, field="p_turn")
        data = await self._rpc(self._service_client(), "chat_checkpoint_signals", params)
        if not isinstance(data, dict):
            return TurnSignals()
        return TurnSignals(followed=data.get("followed") is True, stop=data.get("stop") is True)

    async def signals(self, turns: Sequence[tuple[str, str]]) -> dict[str, TurnSignals]:
        """As the service, about turns this worker produces (attested like a checkpoint)."""
        if not turns:
            return {}
        payload = {
            "v": 1,
            "iat": int(time.time()),
            "turns": [{"user_id": user_id, "turn_id": turn_id} for user_id, turn_id in turns],
        }
        params = self._attestor.params("chat_turn_signals", payload, field="p_turns")
        data = await self._rpc(self._service_client(), "chat_turn_signals", params)
        if not isinstance(data, dict):
            return {}
        return {
            str(turn_id): TurnSignals(
                followed=flags.get("followed") is True, stop=flags.get("stop") is True
            )
            for turn_id, flags in data.items()
            if isinstance(flags, dict)
        }

    async def stop(self, caller: Caller, turn_id: str) -> str | None:
        """As the service, for the user whose token the edge verified (attested like a renewal)."""
        payload = {"v": 1, "iat": int(time.time()), "user_id": caller.user_id, "turn_id": turn_id}
        params = self._attestor.params("chat_stop", payload, field="p_turn")
        state = await self._rpc(self._service_client(), "chat_stop", params)
        return state if isinstance(state, str) else None

    async def progress(
        self, caller: Caller, turn_id: str, after: int, *, follow: bool = True
    ) -> TurnProgress | None:
        """The caller's own turn (the service verified who they are), read as the service;
        `follow` also marks it followed, so its producer keeps going past the grace window."""
        payload = {
            "v": 1,
            "iat": int(time.time()),
            "user_id": caller.user_id,
            "turn_id": turn_id,
            "after": after,
            "follow": follow,
        }
        params = self._attestor.params("chat_turn_progress", payload, field="p_turn")
        data = await self._rpc(self._service_client(), "chat_turn_progress", params)
        if not isinstance(data, dict):
            return None
        lengths = data.get("token_lengths")
        created = str(data.get("created_at") or "")
        try:
            age = time.time() - datetime.fromisoformat(created).timestamp()
        except ValueError:
            age = 0.0
        return TurnProgress(
            state=data.get("state") or "abandoned",
            age_seconds=age,
            parts=tuple(str(p) for p in data.get("parts") or ()),
            token_lengths=tuple(int(n) for n in lengths) if isinstance(lengths, list) else None,
            final=final_from_json(data.get("final")),
            message_id=str(data["message_id"]) if data.get("message_id") else None,
            content=str(data["content"]) if data.get("content") is not None else None,
        )

    async def sweep(self) -> int:
        """Turn the expired turns of dead workers into abandoned usage rows (service role)."""
        return int(await self._rpc(self._service_client(), "chat_sweep", {}) or 0)

    def _service_client(self) -> DataApi:
        if self._service is None:
            raise StoreError(
                "no service role key configured (SUPABASE_SERVICE_ROLE_KEY): the service records"
                " renewals, checkpoints and finishes with it"
            )
        return self._service

    def _finish_params(self, record: dict[str, Any]) -> dict[str, str]:
        if self._budgets is not None and "budgets" not in record:
            record = record | {"budgets": self._budgets}
        return self._attestor.params("chat_finish", record, field="p_record")

    async def ping(self) -> None:
        """A cheap round trip for /readyz: the API answers and the database behind it works.

        It carries only the service's own key, so a refused token here is that key (`KeyRefused`).
        """
        try:
            await self._rpc(self._shared, "chat_ping", {})
        except AuthError as exc:
            raise KeyRefused(f"PostgREST refused SUPABASE_ANON_KEY as a JWT: {exc.detail}") from exc

    async def _rpc(
        self, client: DataApi, fn: str, params: dict[str, Any], *, token: str | None = None
    ) -> Any:
        """One RPC, retried once when a pooled keep-alive connection turns out to be closed.

        The chat RPCs are idempotent (turn id, usage keys), so a retry after a request that did
        reach the server changes nothing.
        """
        async with _translate(fn, self._timeout):
            with tracing.span(f"db.{fn}"):
                for attempt in (1, 2):
                    try:
                        return await client.rpc(fn, params, token=token)
                    except _DROPPED as exc:
                        if attempt == 2:
                            raise
                        logger.info("retrying %s after a dropped connection: %r", fn, exc)
        raise AssertionError("unreachable")
