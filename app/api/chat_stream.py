"""POST /functions/v1/chat-stream — the HTTP edge of a chat turn.

Body rules and the token first (JSON errors; bounded apart as pending requests), then capacity
(503 + Retry-After, before any database call or money), then `begin` (404/409/429/503 as JSON),
then the SSE response: the turn's feed (`chat/feed.py`) runs it and hands each event here to
encode and send. The outcome is observed once.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from app.api.body import authorization_header, check_content_type, parse_body, read_capped
from app.api.deps import Services
from app.api.errors import error_response
from app.api.observe import observe_refusal, observe_turn
from app.api.sse import ClientGone, Emit, encode_event
from app.api.stream import EventStreamResponse
from app.core.domain import TurnEvent, TurnStart
from app.errors import AppError, ShuttingDown

router = APIRouter()
PATH = "/functions/v1/chat-stream"
PATHS = (PATH, f"{PATH}/")  # Supabase serves it with a trailing slash too


# `app.main` serves the POST as an edge route (api/edge.py); the router keeps the path known to
# FastAPI (its 405 for other methods, CORS preflights, any app built without the edge routes).
@router.post(PATH)
@router.post(f"{PATH}/", include_in_schema=False)
async def chat_stream(request: Request) -> Response:
    services: Services = request.app.state.services
    settings, metrics = services.settings, services.metrics
    loop = asyncio.get_running_loop()
    started = loop.time()
    fields: dict[str, Any] = {"http_request_id": request.state.http_request_id}
    try:
        if services.drain.draining:
            raise ShuttingDown("draining for a restart")
        # Until its body is read and its token verified a request holds no turn slot: it is
        # bounded on its own, per worker and per client address (api/pending.py).
        with services.pending.hold(request.client.host if request.client else ""):
            raw = await read_capped(
                request, settings.max_body_bytes, timeout=settings.body_timeout_seconds
            )
            check_content_type(request)
            body = parse_body(raw, max_chars=settings.max_message_chars)
            caller = await services.verifier.verify(authorization_header(request))
        fields |= {"user_id": caller.user_id, "conversation_id": str(body.conversation_id)}
        services.admission.check()  # past capacity: 503 before any database call or money
        services.admission.starting += 1
        try:
            start = TurnStart(
                conversation_id=str(body.conversation_id),
                content=body.message,
                # Only the client's own id: the turn id stays unreadable until the turn is done.
                client_message_id=str(body.client_message_id) if body.client_message_id else None,
                turn_id=str(uuid.uuid4()),
            )
            fields["turn_id"] = start.turn_id
            context = await services.chat.begin(caller, start)
            if context.turn_id is not None:  # a replay answers as the turn it replays
                start = replace(start, turn_id=context.turn_id)
                fields["turn_id"] = start.turn_id
        finally:
            services.admission.starting -= 1
    except AppError as exc:
        observe_refusal(metrics, fields, exc, started, loop.time())
        return error_response(exc)
    turn = services.chat.open(caller, start, context, started=started)
    feed = services.feeds.open(start.turn_id, caller)

    async def produce(emit: Emit) -> None:
        async def deliver(seq: int, event: TurnEvent) -> bool:
            try:
                await emit(encode_event(event, start.turn_id, seq))
            except ClientGone:
                return False
            return True

        metrics.open_streams.inc()
        services.admission.open_streams += 1
        try:
            await feed.run(turn, deliver)
        finally:
            metrics.open_streams.dec()
            services.admission.open_streams -= 1
            if turn.outcome is not None:
                observe_turn(metrics, fields, turn.outcome, started, loop.time())

    return EventStreamResponse(
        produce,
        heartbeat_seconds=settings.heartbeat_seconds,
        headers={"x-turn-id": start.turn_id},
        on_disconnect=feed.detach,
    )
