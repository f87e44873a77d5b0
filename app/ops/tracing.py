"""Spans for a turn when tracing is on, and the trace context on every outbound request.

Tracing is on when the `opentelemetry` extra is installed and `OTEL_EXPORTER_OTLP_ENDPOINT` is
set (`configure`, called by the app's lifespan). Only then is `app.ops.otel` imported, and with
it the OpenTelemetry SDK and the OTLP exporter; otherwise `span()` hands out a no-op and nothing
of OpenTelemetry is imported by this service (FastAPI itself imports the bare API when it is
installed; it records nothing without a tracer provider, and we never set the global one).

The spans of a turn: the request (`chat-stream request`, a server span whose parent is the
client's `traceparent`), `auth.verify`, `db.<rpc>` for each Data API call (`db.chat_begin`,
`db.chat_finish`, …) and `llm.stream` with a `first_token` event. Their attributes are ids and
names only, never content or keys.

`inject_headers` (an httpx request hook on the provider and Data API clients) adds
`traceparent`/`tracestate` to each outbound request: the current span's when tracing is on, else
the client's own, unchanged.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

import httpx

from app.ops import trace_context
from app.ops.trace_context import TraceContext

if TYPE_CHECKING:
    from app.ops.otel import Backend

logger = logging.getLogger(__name__)


class SpanLike(Protocol):
    def add_event(self, name: str, attributes: Any = None) -> Any: ...

    def set_attribute(self, key: str, value: Any) -> Any: ...


class _NoSpan:
    def add_event(self, name: str, attributes: Any = None) -> None:  # noqa: ARG002
        return None

    def set_attribute(self, key: str, value: Any) -> None:  # noqa: ARG002
        return None


NO_SPAN = _NoSpan()
_backend: Backend | None = None


def configure(endpoint: str, service_name: str, *, exporter: object | None = None) -> bool:
    """Turn spans on (True) when an endpoint (or, in tests, an exporter) is given and the
    `opentelemetry` extra is installed; with neither, nothing changes and nothing is imported."""
    global _backend
    if not endpoint and exporter is None:
        return False
    try:
        from app.ops.otel import Backend  # noqa: PLC0415 - optional, only when configured
    except ImportError:
        logger.warning(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set but the opentelemetry extra is not installed:"
            " no spans (pip install 'chat-stream[opentelemetry]')"
        )
        return False
    _backend = Backend(service_name, endpoint, exporter)
    return True


def shutdown() -> None:
    """Flush and stop the exporter (the app's lifespan ends)."""
    global _backend
    backend, _backend = _backend, None
    if backend is not None:
        backend.shutdown()


@contextlib.contextmanager
def span(name: str, **attributes: str | int | bool) -> Iterator[SpanLike]:
    """A child of the current span (no-op while tracing is off)."""
    if _backend is None:
        yield NO_SPAN
        return
    with _backend.span(name, attributes) as current:
        yield current


@contextlib.contextmanager
def server_span(
    name: str, parent: TraceContext | None, **attributes: str | int | bool
) -> Iterator[SpanLike]:
    """The request's span, continuing the client's trace when it sent one."""
    if _backend is None:
        yield NO_SPAN
        return
    with _backend.span(name, attributes, parent=parent, server=True) as current:
        yield current


def current_trace_id() -> str | None:
    """The trace id of this request: the span's when tracing is on, else the client's."""
    if _backend is not None and (trace_id := _backend.trace_id()) is not None:
        return trace_id
    context = trace_context.current.get()
    return context.trace_id if context else None


def outbound_headers() -> dict[str, str]:
    """`traceparent` (and `tracestate`) to send upstream from the current context; maybe none."""
    if _backend is not None and (headers := _backend.headers()) is not None:
        return headers
    context = trace_context.current.get()
    if context is None:
        return {}
    out = {"traceparent": context.traceparent}
    if context.tracestate:
        out["tracestate"] = context.tracestate
    return out


async def inject_headers(request: httpx.Request) -> None:
    """httpx request hook: the current trace context onto an outbound request."""
    for name, value in outbound_headers().items():
        request.headers[name] = value
