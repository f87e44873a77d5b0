"""The HTTP/1.1 protocol `chat-stream serve` gives uvicorn: guards uvicorn itself does not have.

uvicorn's httptools protocol with three changes, all below the ASGI app:

- **A header deadline** (`HEADER_TIMEOUT_SECONDS`). uvicorn times out idle keep-alive connections
  (`timeout_keep_alive`) but never a request whose headers trickle in, so one slow-loris client
  can hold a socket for ever. Here the clock starts when a connection opens or a request's first
  byte arrives and stops when its headers are complete; past it the client gets a 408 and the
  connection is closed.
- **A header size cap** (64 KiB before the headers end): httptools sets none.
- **Our JSON error shape** for what uvicorn answers itself: framing errors (400 instead of
  "Invalid HTTP request received." in plain text), and the 503 of `limit_concurrency` (which
  `serve` sets from `MAX_CONNECTIONS_PER_WORKER`).

uvicorn accepts a protocol class by import path
(`http="app.api.protocol:GuardedHttpToolsProtocol"`), which also reaches every worker
process. Settings are read once per process through `get_settings()`.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from uvicorn.protocols.http.flow_control import service_unavailable
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from app.config import get_settings
from app.user_messages import user_message

PROTOCOL_PATH = "app.api.protocol:GuardedHttpToolsProtocol"
MAX_HEADER_BYTES = 64 * 1024

_REASONS = {400: b"Bad Request", 408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


def error_body(error: str, *, code: str) -> bytes:
    """The `{"error", "userMessage", "code"}` shape every other refusal uses."""
    return orjson.dumps({"error": error, "userMessage": user_message(code), "code": code})


async def _over_capacity(scope: Any, receive: Any, send: Any) -> None:  # noqa: ARG001
    """`limit_concurrency`'s 503, in our shape, with a retry hint."""
    body = error_body("Service temporarily unavailable", code="over_capacity")
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", b"1"),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout = get_settings().header_timeout_seconds
        self._header_timer: asyncio.TimerHandle | None = None
        self._header_bytes = 0
        self._in_headers = False

    # --- the header deadline ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._start_header_clock()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_header_clock()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._in_headers or self._header_timer is not None:
            self._header_bytes += len(data)
            if self._header_bytes > MAX_HEADER_BYTES:
                self._refuse(431, "Request headers too large", code="headers_too_large")
                return
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers = True
        if self._header_timer is None:
            self._start_header_clock()

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._stop_header_clock()
        super().on_headers_complete()

    def _start_header_clock(self) -> None:
        self._header_bytes = 0
        if self.header_timeout > 0:
            self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _stop_header_clock(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        self._header_bytes = 0

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        self.logger.info(
            "closed a connection: request headers not complete in %ss", self.header_timeout
        )
        self._refuse(408, "The request headers took too long to arrive", code="request_timeout")

    # --- our JSON for uvicorn's own answers ---------------------------------------------------
    def send_400_response(self, msg: str) -> None:  # noqa: ARG002  (uvicorn's plain-text copy)
        self._refuse(400, "Invalid HTTP request", code="invalid_http")

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        if app is service_unavailable:
            app = _over_capacity
        super()._start_asgi_task(cycle, app)

    def _refuse(self, status: int, error: str, *, code: str) -> None:
        """Answer (unless a response is already under way) and close the connection."""
        self._stop_header_clock()
        if self.cycle is None or self.cycle.response_complete:
            body = error_body(error, code=code)
            head = b"HTTP/1.1 %d %s\r\n" % (status, _REASONS[status])
            self.transport.write(
                head
                + b"content-type: application/json\r\n"
                + b"content-length: %d\r\n" % len(body)
                + b"connection: close\r\n\r\n"
                + body
            )
        self.transport.close()
