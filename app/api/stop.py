"""POST /functions/v1/chat-stream/turns/<turn_id>/stop — stop a turn, as its own user.

The HTTP edge only: the turn id in the path (anything else is 404), the token, then the use case
(`app/chat/stop.py`). 202 `{"turnId", "state": "stopping"}` when the turn streamed and is now
told to stop (its stream ends with `done` and `"stopped": true`); 200 `{"turnId", "state":
"ended"}` when it had already ended. Another user's turn, or none, is 404.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from app.api.body import authorization_header
from app.api.deps import Services
from app.api.errors import error_response
from app.chat.stop import stop_turn
from app.errors import AppError, NotFound

router = APIRouter()


@router.post("/functions/v1/chat-stream/turns/{turn_id}/stop")
async def stop(request: Request, turn_id: str) -> Response:
    services: Services = request.app.state.services
    try:
        turn_id = str(uuid.UUID(turn_id))
    except ValueError:
        return error_response(NotFound("not a turn id"))
    try:
        caller = await services.verifier.verify(authorization_header(request))
        stopping = await stop_turn(services.feeds, services.store, caller, turn_id)
    except AppError as exc:
        return error_response(exc)
    if stopping:
        return JSONResponse({"turnId": turn_id, "state": "stopping"}, status_code=202)
    return JSONResponse({"turnId": turn_id, "state": "ended"})
