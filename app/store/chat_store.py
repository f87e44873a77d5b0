"""ChatStore on Supabase: supabase-py `.rpc()` as the calling user, so RLS decides.

One shared PostgREST client (and its httpx pool) carries no user auth; each call works on a cheap
per-request copy that carries the caller's token (`schema("public").auth(jwt)` copies headers and
shares the session and its connection pool). Never `.auth()` or close the shared client.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import httpx
from postgrest import APIError, AsyncPostgrestClient

from app.core.domain import (
    Caller,
    ChatMessage,
    Done,
    Failed,
    FinishResult,
    StoredAnswer,
    TurnContext,
    TurnProgress,
    TurnRecord,
    TurnSignals,
    TurnStart,
    TurnTerms,
    Usage,
)
from app.errors import (
    AuthError,
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
from app.user_messages import user_message

logger = logging.getLogger(__name__)

_AUTH_CODES = {"PGRST301", "PGRST302", "PGRST303", "401"}
# What Supabase's gateway (Kong) answers for a wrong or missing `apikey`; it has no `code`.
_GATEWAY_KEY_REFUSALS = {"Invalid API key", "No API key found in request"}
_RETRY_AFTER = re.compile(r"retry_after=(\d+)")
_NOT_FOUND_CODES = {"PT404", "42501"}
# SQLSTATE classes 22 (data exception) and 23 (integrity violation): the same write fails again.
_PERMANENT_CLASSES = {"22", "23"}


@asynccontextmanager
async def _translate(operation: str, timeout: float) -> AsyncIterator[None]:  # noqa: ASYNC109
    """PostgREST/httpx failures → AppErrors; every call bounded by `timeout`."""
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
    except httpx.HTTPError as exc:
        raise StoreError(f"{operation}: {type(exc).__name__}: {exc}") from exc
    except ValueError as exc:  # a non-JSON answer where JSON was expected
        raise StoreError(f"{operation}: unreadable answer: {exc}") from exc


def finish_params(user_id: str, record: TurnRecord) -> dict[str, Any]:
    """The turn's final write, unsigned (what the outbox keeps on the service's own disk)."""
    rows = record.usage_rows
    message = None
    if record.message_id is not None:
        message = {
            "id": record.message_id,
            "content": record.content.replace("\x00", ""),  # PostgreSQL text cannot hold NUL
            "status": record.status,
            "token_count": rows[-1].usage.output_tokens if rows else None,
        }
    return {
        "v": 1,
        "user_id": user_id,
        "turn_id": record.turn_id,
        "conversation_id": record.conversation_id,
        "message": message,
        "replay": {"token_lengths": list(record.token_lengths), "final": final_json(record.final)},
        "usage": [
            {
                "attempt_id": row.attempt_id,
                "provider": row.provider,
                "model": row.model,
                "tokens_in": row.usage.input_tokens,
                "tokens_out": row.usage.output_tokens,
                "cache_read_tokens": row.usage.cache_read_tokens,
                "cache_write_tokens": row.usage.cache_write_tokens,
                "cost_usd": str(row.price.cost_usd),  # a string: exact through JSON
                "status": row.status,
                "estimated": row.usage.estimated,
                "ttft_ms": row.ttft_ms,
                "duration_ms": row.duration_ms,
                "price_source": row.price.source,
                "provider_cost_usd": None
                if row.provider_cost_usd is None
                else str(row.provider_cost_usd),
            }
            for row in rows
        ],
    }


def final_json(final: Done | Failed | None) -> dict[str, Any] | None:
    if isinstance(final, Done):
        done: dict[str, Any] = {
            "type": "done",
            "message_id": final.message_id,
            "input_tokens": final.usage.input_tokens,
            "output_tokens": final.usage.output_tokens,
            "cache_read_tokens": final.usage.cache_read_tokens,
            "cache_write_tokens": final.usage.cache_write_tokens,
        }
        if final.stopped:
            done["stopped"] = True
        return done
    if isinstance(final, Failed):
        return {"type": "error", "code": final.code, "message": final.user_message}
    return None


def final_from_json(data: object) -> Done | Failed | None:
    if not isinstance(data, dict):
        return None
    if data.get("type") == "done":
        usage = Usage(
            input_tokens=int(data.get("input_tokens") or 0),
            output_tokens=int(data.get("output_tokens") or 0),
            cache_read_tokens=int(data.get("cache_read_tokens") or 0),
            cache_write_tokens=int(data.get("cache_write_tokens") or 0),
        )
        message_id = data.get("message_id")
        stopped = data.get("stopped") is True
        return Done(str(message_id) if message_id else None, usage, stopped=stopped)
    if data.get("type") == "error":
        code = str(data.get("code") or "internal_error")
        return Failed(code=code, user_message=str(data.get("message") or user_message(code)))
    return None


def upgrade_spooled(params: dict[str, Any]) -> dict[str, Any]:
    """A record spooled by the previous version (`p_user_id`, `p_request_id`, rows keyed by
    `request_id`) in today's shape; today's records pass through unchanged."""
    if "p_user_id" not in params:
        return params
    message = params.get("p_message")
    if isinstance(message, dict):
        message = {k: v for k, v in message.items() if k != "request_id"}
    return {
        "v": 1,
        "user_id": params["p_user_id"],
        "turn_id": params.get("p_request_id"),
        "conversation_id": params.get("p_conversation_id"),
        "message": message,
        "usage": [
            {k: v for k, v in row.items() if k != "request_id"} | {"attempt_id": row["request_id"]}
            for row in params.get("p_usage") or ()
            if isinstance(row, dict) and row.get("request_id")
        ],
    }


def begin_payload(caller: Caller, turn: TurnStart, terms: TurnTerms, now: float) -> dict[str, Any]:
    """The attested `chat_begin` call: the turn and every term it is decided with."""
    reservation, caps = terms.reservation, terms.caps
    return {
        "v": 1,
        "iat": int(now),
        "user_id": caller.user_id,
        "turn_id": turn.turn_id,
        "conversation_id": turn.conversation_id,
        "content": turn.content,
        "client_message_id": turn.client_message_id,
        "history_tokens": terms.history_tokens,
        "history_messages": terms.history_messages,
        "system_tokens": reservation.system_tokens,
        "lease_seconds": reservation.lease_seconds,
        "reserve": {
            "usd": str(reservation.usd),
            "provider": reservation.provider,
            "model": reservation.model,
            "input_usd_per_mtok": str(reservation.input_usd_per_mtok),
        },
        "caps": {
            "daily_usd": str(caps.daily_usd),
            "monthly_usd": str(caps.monthly_usd),
            "rate_per_minute": caps.rate_per_minute,
            "max_streams": caps.max_streams,
        },
    }


class SupabaseChatStore:
    def __init__(
        self,
        postgrest: AsyncPostgrestClient,
        attestor: Attestor,
        *,
        service: AsyncPostgrestClient | None = None,
        timeout: float = 2.5,
        budgets: dict[str, str] | None = None,
    ) -> None:
        self._shared = postgrest
        # The alert thresholds from settings, attested with each finish (user_limits wins).
        self._budgets = budgets
        self._attestor = attestor
        self._service = service
        self._timeout = timeout

    def _as(self, token: str) -> AsyncPostgrestClient:
        return self._shared.schema("public").auth(token)

    async def begin(self, caller: Caller, turn: TurnStart, terms: TurnTerms) -> TurnContext:
        payload = begin_payload(caller, turn, terms, time.time())
        params = self._attestor.params("chat_begin", payload, field="p_turn")
        data = await self._rpc(self._as(caller.token), "chat_begin", params)
        if not isinstance(data, dict) or "user_message_id" not in data:
            raise StoreError(f"chat_begin: unexpected answer {type(data).__name__}")
        history = tuple(
            ChatMessage(role=m["role"], content=m["content"]) for m in data.get("history") or ()
        )
        answer = data.get("answer")
        return TurnContext(
            history=history,
            answer=StoredAnswer(str(answer["id"]), str(answer["content"]))
            if isinstance(answer, dict)
            else None,
        )

    async def renew(self, caller: Caller, turn_id: str, lease_seconds: int) -> bool:
        payload = {
            "v": 1,
            "iat": int(time.time()),
            "user_id": caller.user_id,
            "turn_id": turn_id,
            "lease_seconds": lease_seconds,
        }
        params = self._attestor.params("chat_renew", payload, field="p_turn")
        return bool(await self._rpc(self._as(caller.token), "chat_renew", params))

    async def finish(self, caller: Caller, record: TurnRecord) -> FinishResult:
        params = self._finish_params(finish_params(caller.user_id, record))
        return _finish_result(await self._rpc(self._as(caller.token), "chat_finish", params))

    async def finish_as_service(self, spooled: dict[str, Any]) -> FinishResult:
        """Replay a spooled write with the service role (the user's token may have expired)."""
        service = self._service_client()
        params = self._finish_params(upgrade_spooled(spooled))
        return _finish_result(await self._rpc(service, "chat_finish", params))

    async def checkpoint(
        self, caller: Caller, turn_id: str, start: int, parts: list[str]
    ) -> TurnSignals:
        payload = {
            "v": 1,
            "iat": int(time.time()),
            "user_id": caller.user_id,
            "turn_id": turn_id,
            "from": start,
            "parts": parts,
        }
        params = self._attestor.params("chat_checkpoint_signals", payload, field="p_turn")
        data = await self._rpc(self._as(caller.token), "chat_checkpoint_signals", params)
        if not isinstance(data, dict):
            return TurnSignals()
        return TurnSignals(followed=data.get("followed") is True, stop=data.get("stop") is True)

    async def stop(self, caller: Caller, turn_id: str) -> str | None:
        state = await self._rpc(self._as(caller.token), "chat_stop", {"p_turn_id": turn_id})
        return state if isinstance(state, str) else None

    async def progress(self, caller: Caller, turn_id: str, after: int) -> TurnProgress | None:
        data = await self._rpc(
            self._as(caller.token),
            "chat_turn_progress",
            {"p_turn_id": turn_id, "p_after": after},
        )
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

    def _service_client(self) -> AsyncPostgrestClient:
        if self._service is None:
            raise StoreError("no service role key configured to replay the outbox")
        return self._service.schema("public")

    def _finish_params(self, record: dict[str, Any]) -> dict[str, str]:
        if self._budgets is not None and "budgets" not in record:
            record = record | {"budgets": self._budgets}
        return self._attestor.params("chat_finish", record, field="p_record")

    async def ping(self) -> None:
        """A cheap round trip for /readyz: the API answers and the database behind it works.

        It carries only the service's own key, so a refused token here is that key (`KeyRefused`).
        """
        try:
            await self._rpc(self._shared.schema("public"), "chat_ping", {})
        except AuthError as exc:
            raise KeyRefused(f"PostgREST refused SUPABASE_ANON_KEY as a JWT: {exc.detail}") from exc

    async def _rpc(self, client: AsyncPostgrestClient, fn: str, params: dict[str, Any]) -> Any:
        """One RPC, retried once when a pooled keep-alive connection turns out to be closed.

        The chat RPCs are idempotent (turn id, usage keys), so a retry after a request that did
        reach the server changes nothing.
        """
        async with _translate(fn, self._timeout):
            with tracing.span(f"db.{fn}"):
                for attempt in (1, 2):
                    try:
                        return (await client.rpc(fn, params).execute()).data
                    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
                        if attempt == 2:
                            raise
                        logger.info("retrying %s after a dropped connection: %r", fn, exc)
        raise AssertionError("unreachable")


def _finish_result(data: object) -> FinishResult:
    if not isinstance(data, dict):
        raise StoreError(f"chat_finish: unexpected answer {type(data).__name__}")
    return FinishResult(
        message_id=data.get("message_id"),
        usage_ids=tuple(int(i) for i in data.get("usage_ids") or ()),
    )
