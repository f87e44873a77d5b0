"""POST /functions/v1/chat-stream — the HTTP edge of a chat turn."""

from __future__ import annotations

import asyncio
import logging
import uuid

from fastapi import APIRouter, Request
from starlette.responses import Response

from app.api.body import check_content_type, parse_body, read_capped
from app.api.deps import Services
from app.api.stream import EventStreamResponse
from app.domain import TurnStart
from app.sse import Emit

logger = logging.getLogger(__name__)

router = APIRouter()


@router.post("/functions/v1/chat-stream")
async def chat_stream(request: Request) -> Response:
    services: Services = request.app.state.services
    settings = services.settings
    started = asyncio.get_running_loop().time()

    raw = await read_capped(request, settings.max_body_bytes)
    check_content_type(request)
    body = parse_body(raw, max_chars=settings.max_message_chars)
    caller = await services.verifier.verify(request.headers.get("authorization"))
    request_id = str(uuid.uuid4())
    turn = TurnStart(
        conversation_id=str(body.conversation_id),
        content=body.message,
        # Without the client's own id, the request id makes `begin` safe to retry.
        client_message_id=str(body.client_message_id or request_id),
        request_id=request_id,
    )
    context = await services.chat.begin(caller, turn)

    async def produce(emit: Emit) -> None:
        outcome = await services.chat.run_turn(caller, turn, context, emit, started=started)
        logger.info(
            "turn %s finished: status=%s tokens=%d spooled=%s",
            turn.request_id,
            outcome.record.status,
            outcome.tokens_relayed,
            outcome.spooled,
        )

    return EventStreamResponse(produce, heartbeat_seconds=settings.heartbeat_seconds)
