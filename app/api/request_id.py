"""X-Request-Id: accepted from the client when it is a plain token, else generated; returned."""

from __future__ import annotations

import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.ops.logs import valid_request_id

HEADER = b"x-request-id"


def assign_request_id(scope: Scope) -> str:
    """The request's id, kept in its state (`request.state.http_request_id`) for the log line."""
    sent = dict(scope["headers"]).get(HEADER, b"").decode("latin-1")  # the last one, if several
    request_id = valid_request_id(sent) or str(uuid.uuid4())
    scope.setdefault("state", {})["http_request_id"] = request_id
    return request_id


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = (HEADER, assign_request_id(scope).encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = dict(message)
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        await self.app(scope, receive, send_with_id)
