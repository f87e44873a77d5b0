"""The request's W3C trace context: read at the edge, kept for the request, its span opened.

A valid `traceparent` (and `tracestate`) becomes the request's `trace_context.current`, which the
log line (`trace_id`) and every outbound call (providers, Data API) read; a malformed one is
ignored. Chat-stream requests also get the server span of `app.ops.tracing` (a no-op while tracing
is off); health checks and metrics scrapes do not.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from starlette.types import ASGIApp, Receive, Scope, Send

from app.ops import trace_context, tracing

TRACED_PREFIX = "/functions/v1/"
_TURN = "/chat-stream/turns/"
_ROUTE_TURN = "/functions/v1/chat-stream/turns/{turn_id}"


@contextlib.contextmanager
def request_trace(scope: Scope) -> Iterator[None]:
    """The request's trace context, current while it is served (and its server span, if traced)."""
    sent = [(n, v) for n, v in scope["headers"] if n in (b"traceparent", b"tracestate")]
    parents = [v for n, v in sent if n == b"traceparent"]
    states = [v.decode("latin-1") for n, v in sent if n == b"tracestate"]
    # Two traceparent headers are malformed; tracestate may be split over several.
    context = trace_context.from_headers(
        {"traceparent": parents[0].decode("latin-1"), "tracestate": ",".join(states)}
        if len(parents) == 1
        else {}
    )
    token = trace_context.current.set(context)
    try:
        path = str(scope.get("path", ""))
        if not path.startswith(TRACED_PREFIX):
            yield
            return
        method = str(scope.get("method", ""))
        route = _ROUTE_TURN if _TURN in path else path  # one span name per route, not per id
        with tracing.server_span(
            f"{method} {route}", context, **{"http.request.method": method, "http.route": route}
        ):
            yield
    finally:
        trace_context.current.reset(token)


class TraceContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with request_trace(scope):
            await self.app(scope, receive, send)
