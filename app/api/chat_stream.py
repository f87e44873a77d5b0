"""POST /functions/v1/chat-stream — the HTTP edge of a chat turn, with its log line and metrics."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from app.api.body import authorization_header, check_content_type, parse_body, read_capped
from app.api.deps import Services
from app.api.errors import error_response
from app.api.stream import EventStreamResponse
from app.auth import TokenRefused
from app.chat import TurnOutcome
from app.domain import TurnStart
from app.errors import AppError, OverBudget, RateLimited
from app.logs import REQUEST_LOGGER
from app.sse import Emit

router = APIRouter()
request_log = logging.getLogger(REQUEST_LOGGER)


@router.post("/functions/v1/chat-stream")
@router.post("/functions/v1/chat-stream/", include_in_schema=False)  # Supabase serves it too
async def chat_stream(request: Request) -> Response:
    services: Services = request.app.state.services
    settings, metrics = services.settings, services.metrics
    loop = asyncio.get_running_loop()
    started = loop.time()
    fields: dict[str, Any] = {"request_id": request.state.request_id}
    try:
        raw = await read_capped(
            request, settings.max_body_bytes, timeout=settings.body_timeout_seconds
        )
        check_content_type(request)
        body = parse_body(raw, max_chars=settings.max_message_chars)
        caller = await services.verifier.verify(authorization_header(request))
        fields |= {"user_id": caller.user_id, "conversation_id": str(body.conversation_id)}
        turn_id = str(uuid.uuid4())
        turn = TurnStart(
            conversation_id=str(body.conversation_id),
            content=body.message,
            # Only the client's own id: the turn id must stay unreadable until the turn is done.
            client_message_id=str(body.client_message_id) if body.client_message_id else None,
            turn_id=turn_id,
        )
        fields["turn_id"] = turn_id
        context = await services.chat.begin(caller, turn)
    except AppError as exc:
        if isinstance(exc, OverBudget | RateLimited):
            metrics.refusals.labels(exc.code).inc()
        if isinstance(exc, TokenRefused):  # why, for operators only
            metrics.auth_refusals.labels(exc.reason).inc()
            fields["reason"] = exc.reason
        metrics.requests.labels(exc.code).inc()
        _log(fields | {"outcome": exc.code, "status": exc.status}, started, loop.time())
        return error_response(exc)

    def report(outcome: TurnOutcome) -> None:
        record = outcome.record
        rows = record.usage_rows
        for row in rows:
            metrics.cost.labels(row.model).inc(float(row.price.cost_usd))
        for kind in outcome.upstream_failures:
            metrics.upstream_errors.labels(kind).inc()
        metrics.requests.labels(outcome.label).inc()
        metrics.tokens.inc(outcome.tokens_relayed)
        if outcome.ttft_ms is not None:
            metrics.ttft.observe(outcome.ttft_ms / 1000)
        now = loop.time()
        metrics.duration.observe(now - started)
        _log(
            fields
            | {
                "outcome": outcome.label,
                "status": 200,
                "model": rows[-1].model if rows else None,
                "provider": rows[-1].provider if rows else None,
                "tokens_in": sum(r.usage.prompt_tokens for r in rows),
                "tokens_out": sum(r.usage.output_tokens for r in rows),
                "cost_usd": str(record.cost_usd),
                "ttft_ms": outcome.ttft_ms,
                "error": outcome.error.code if outcome.error else None,
                "spooled": outcome.spooled,
            },
            started,
            now,
        )

    async def produce(emit: Emit) -> None:
        metrics.open_streams.inc()
        try:
            await services.chat.run_turn(
                caller, turn, context, emit, started=started, report=report
            )
        finally:
            metrics.open_streams.dec()

    return EventStreamResponse(produce, heartbeat_seconds=settings.heartbeat_seconds)


def _log(fields: dict[str, Any], started: float, now: float) -> None:
    fields["duration_ms"] = round((now - started) * 1000)
    request_log.info("chat-stream %s", fields.get("outcome"), extra=fields)
