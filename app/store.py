"""ChatStore on Supabase: supabase-py `.rpc()` as the calling user, so RLS decides.

One shared PostgREST client (and its httpx pool) carries no user auth; each call works on a cheap
per-request copy that carries the caller's token (`schema("public").auth(jwt)` copies headers and
shares the session — wire reference §1.3–1.4). Never `.auth()` or close the shared client.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from postgrest import APIError, AsyncPostgrestClient

from app.domain import (
    Caller,
    ChatMessage,
    FinishResult,
    Guard,
    StoredAnswer,
    TurnContext,
    TurnRecord,
    TurnStart,
)
from app.errors import (
    AuthError,
    NotFound,
    OverBudget,
    RateLimited,
    StoreError,
    StoreRejected,
)

logger = logging.getLogger(__name__)

_AUTH_CODES = {"PGRST301", "PGRST302", "PGRST303", "401"}
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
        code = str(exc.code or "")
        if code in _AUTH_CODES:
            raise AuthError(f"{operation}: {code} {exc.message}") from exc
        if code in _NOT_FOUND_CODES:
            raise NotFound(f"{operation}: {code}") from exc
        if code == "PT429":
            match = _RETRY_AFTER.search(str(exc.details or ""))
            retry_after = int(match.group(1)) if match else 1
            kind = OverBudget if exc.hint == "over_budget" else RateLimited
            raise kind(f"{operation}: {exc.message}", retry_after=retry_after) from exc
        if code[:2] in _PERMANENT_CLASSES:
            raise StoreRejected(f"{operation}: {code} {exc.message}") from exc
        raise StoreError(f"{operation}: {code} {exc.message}") from exc
    except TimeoutError as exc:
        raise StoreError(f"{operation}: timed out after {timeout}s") from exc
    except httpx.HTTPError as exc:
        raise StoreError(f"{operation}: {type(exc).__name__}: {exc}") from exc
    except ValueError as exc:  # a non-JSON answer where JSON was expected
        raise StoreError(f"{operation}: unreadable answer: {exc}") from exc


def finish_params(user_id: str, record: TurnRecord) -> dict[str, Any]:
    """The `chat_finish` arguments for a turn (also what the outbox stores and replays)."""
    rows = record.usage_rows
    message = None
    if record.message_id is not None:
        token_count = rows[-1].usage.output_tokens if rows else None
        message = {
            "id": record.message_id,
            "content": record.content.replace("\x00", ""),  # PostgreSQL text cannot hold NUL
            "status": record.status,
            "token_count": token_count,
            "request_id": record.request_id,
        }
    return {
        "p_user_id": user_id,
        "p_conversation_id": record.conversation_id,
        "p_request_id": record.request_id,
        "p_message": message,
        "p_usage": [
            {
                "request_id": row.request_id,
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
            }
            for row in rows
        ],
    }


class SupabaseChatStore:
    def __init__(
        self,
        postgrest: AsyncPostgrestClient,
        *,
        service: AsyncPostgrestClient | None = None,
        timeout: float = 2.5,
    ) -> None:
        self._shared = postgrest
        self._service = service
        self._timeout = timeout

    def _as(self, token: str) -> AsyncPostgrestClient:
        return self._shared.schema("public").auth(token)

    async def begin(
        self,
        caller: Caller,
        turn: TurnStart,
        *,
        history_tokens: int,
        history_messages: int,
        guard: Guard | None = None,
    ) -> TurnContext:
        params: dict[str, Any] = {
            "p_conversation_id": turn.conversation_id,
            "p_content": turn.content,
            "p_client_message_id": turn.client_message_id,
            "p_history_tokens": history_tokens,
            "p_history_messages": history_messages,
        }
        if guard is not None:
            params |= {
                "p_request_id": turn.request_id,
                "p_reserve_usd": str(guard.reserve_usd),
                "p_daily_cap": str(guard.daily_cap_usd),
                "p_monthly_cap": str(guard.monthly_cap_usd),
                "p_rate_per_minute": guard.rate_per_minute,
                "p_max_streams": guard.max_streams,
                "p_reservation_ttl": guard.ttl_seconds,
            }
        data = await self._rpc(self._as(caller.token), "chat_begin", params)
        if not isinstance(data, dict) or "user_message_id" not in data:
            raise StoreError(f"chat_begin: unexpected answer {type(data).__name__}")
        history = tuple(
            ChatMessage(role=m["role"], content=m["content"]) for m in data.get("history") or ()
        )
        answer = data.get("answer")
        return TurnContext(
            user_message_id=str(data["user_message_id"]),
            history=history,
            replayed=bool(data.get("replayed")),
            answer=StoredAnswer(str(answer["id"]), str(answer["content"]))
            if isinstance(answer, dict)
            else None,
        )

    async def finish(self, caller: Caller, record: TurnRecord) -> FinishResult:
        params = finish_params(caller.user_id, record)
        return _finish_result(await self._rpc(self._as(caller.token), "chat_finish", params))

    async def finish_as_service(self, params: dict[str, Any]) -> FinishResult:
        """Replay a spooled write with the service role (the user's token may have expired)."""
        if self._service is None:
            raise StoreError("no service role key configured to replay the outbox")
        service = self._service.schema("public")
        return _finish_result(await self._rpc(service, "chat_finish", params))

    async def ping(self) -> None:
        """A cheap round trip for /readyz: the API answers and the database behind it works."""
        await self._rpc(self._shared.schema("public"), "chat_ping", {})

    async def _rpc(self, client: AsyncPostgrestClient, fn: str, params: dict[str, Any]) -> Any:
        """One RPC, retried once when a pooled keep-alive connection turns out to be closed.

        Both chat RPCs are idempotent (client message id, reservation and usage keys), so a
        retry after a request that did reach the server changes nothing.
        """
        async with _translate(fn, self._timeout):
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
