"""A body cap on every `/auth/v1` route, as GoTrue's `limitRequestBody` puts one on its router.

A declared `Content-Length` over the cap is refused before the app runs; a chunked body is cut
off as soon as it grows past the cap. Either way the answer is 413 `request_too_large` in the
error shape the request's API version selects, and the rest of the body is never read.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.local.auth.errors import AuthApiError, render_error
from app.local.auth.params import MAX_BODY_BYTES


class TooLarge(AuthApiError):
    """Raised from `receive`: the app's AuthApiError handler renders it as the 413."""

    def __init__(self) -> None:
        super().__init__(413, "request_too_large", "Request body too large")


class BodyCap:
    def __init__(self, app: ASGIApp, *, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            await self._refuse(scope, send)
            return
        seen = 0
        started = False

        async def capped_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, capped_receive, tracking_send)
        except TooLarge:
            if not started:
                await self._refuse(scope, send)

    @staticmethod
    async def _refuse(scope: Scope, send: Send) -> None:
        response = render_error(Request(scope), TooLarge())
        response.headers["connection"] = "close"
        await response(scope, _no_body, send)


async def _no_body() -> Message:
    return {"type": "http.disconnect"}
