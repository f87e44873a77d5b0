"""GET /functions/v1/chat-stream/turns/<turn_id> — resume a turn after a dropped connection.

The HTTP edge only: the turn id in the path (anything else is 404), `Last-Event-ID:
<turn_id>:<seq>` (none: from the start; `parse_last_event_id`), the token, then the events the
use case yields (`app/chat/resume.py`), encoded by `sse.encode_event`. Errors before the stream
are JSON.
"""

from __future__ import annotations

from contextlib import ExitStack, aclosing

from fastapi import APIRouter, Request
from starlette.responses import Response

from app.api.body import authorization_header
from app.api.deps import Services
from app.api.errors import error_response
from app.api.headers import canonical_uuid, last_event_seq
from app.api.sse import Emit, encode_event
from app.api.stream import EventStreamResponse
from app.errors import AppError, TurnNotFound

router = APIRouter()


@router.get("/functions/v1/chat-stream/turns/{turn_id}")
async def resume(request: Request, turn_id: str) -> Response:
    services: Services = request.app.state.services
    canonical = canonical_uuid(turn_id)
    if canonical is None:
        return error_response(TurnNotFound("not a turn id"))
    turn_id = canonical
    slot = ExitStack()  # this follower's place: per turn, per user, and among the open streams
    try:
        after = parse_last_event_id(request.headers.get("last-event-id"), turn_id)
        caller = await services.verifier.verify(authorization_header(request))
        services.admission.check()
        slot.enter_context(services.followers.hold(turn_id, caller.user_id))
        events = await services.resumer.resume(caller, turn_id, after)
    except AppError as exc:
        slot.close()
        return error_response(exc)
    services.admission.open_streams += 1

    async def produce(emit: Emit) -> None:
        try:
            async with aclosing(events):
                async for seq, event in events:
                    await emit(encode_event(event, turn_id, seq))
        finally:
            services.admission.open_streams -= 1
            slot.close()

    return EventStreamResponse(
        produce,
        heartbeat_seconds=services.settings.heartbeat_seconds,
        headers={"x-turn-id": turn_id},
    )


def parse_last_event_id(value: str | None, turn_id: str) -> int:
    """The seq a resume continues after: 0 without the header, else `<turn_id>:<seq>`'s seq,
    parsed strictly (ASCII digits, bounded: `app/api/headers.py`)."""
    return last_event_seq(value, turn_id)
