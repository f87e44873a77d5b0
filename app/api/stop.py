"""POST /functions/v1/chat-stream/turns/<turn_id>/stop — stop a turn, as its own user.

The HTTP edge only: the turn id in the path, read as resume reads it (anything else is 404
`turn_not_found`), the token, then the use case (`app/chat/stop.py`). 202 `{"turnId", "state":
"stopping"}` when the turn streamed and is now told to stop (its stream ends with `done` and
`"stopped": true`); 200 `{"turnId", "state": "ended"}` when it had already ended. Another
user's turn, or none, is 404 `turn_not_found`, as for resume.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from app.api.body import authorization_header
from app.api.deps import Services
from app.api.errors import error_response
from app.api.headers import canonical_uuid
from app.chat.stop import stop_turn
from app.errors import AppError, TurnNotFound

router = APIRouter()


@router.post("/functions/v1/chat-stream/turns/{turn_id}/stop")
async def stop(request: Request, turn_id: str) -> Response:
    services: Services = request.app.state.services
    canonical = canonical_uuid(turn_id)  # as resume: one spelling of a turn id, no other
    if canonical is None:
        return error_response(TurnNotFound("not a turn id"))
    turn_id = canonical
    try:
        caller = await services.verifier.verify(authorization_header(request))
        stopping = await stop_turn(services.feeds, services.store, caller, turn_id)
    except AppError as exc:
        return error_response(exc)
    if stopping:
        return JSONResponse({"turnId": turn_id, "state": "stopping"}, status_code=202)
    return JSONResponse({"turnId": turn_id, "state": "ended"})
