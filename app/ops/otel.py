"""The OpenTelemetry SDK behind `app.ops.tracing`: imported only when tracing is configured.

A private `TracerProvider` (the global one is left alone, so libraries that trace through the
global API stay silent), the OTLP/HTTP exporter behind a batch processor, and the W3C propagator
for outbound headers. Sampling is the SDK's default: the client's sampled flag decides, and a
trace we start ourselves is sampled.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags, TraceState
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from app.ops.trace_context import TraceContext

TRACES_PATH = "/v1/traces"


def traces_url(endpoint: str) -> str:
    """`OTEL_EXPORTER_OTLP_ENDPOINT` is the collector's base URL; spans go to `/v1/traces`."""
    base = endpoint.rstrip("/")
    return base if base.endswith(TRACES_PATH) else base + TRACES_PATH


class Backend:
    def __init__(self, service_name: str, endpoint: str, exporter: object | None = None) -> None:
        self.provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        if isinstance(exporter, SpanExporter):  # tests: the in-memory exporter, synchronously
            self.provider.add_span_processor(SimpleSpanProcessor(exporter))
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
                OTLPSpanExporter,
            )

            otlp = OTLPSpanExporter(endpoint=traces_url(endpoint))
            self.provider.add_span_processor(BatchSpanProcessor(otlp))
        self.tracer = self.provider.get_tracer("chat-stream")
        self.propagator = TraceContextTextMapPropagator()

    @contextlib.contextmanager
    def span(
        self,
        name: str,
        attributes: Mapping[str, Any],
        *,
        parent: TraceContext | None = None,
        server: bool = False,
    ) -> Iterator[trace.Span]:
        context = None
        if parent is not None:
            remote = SpanContext(
                trace_id=int(parent.trace_id, 16),
                span_id=int(parent.parent_id, 16),
                is_remote=True,
                trace_flags=TraceFlags(int(parent.flags, 16)),
                trace_state=TraceState.from_header([parent.tracestate])
                if parent.tracestate
                else None,
            )
            context = trace.set_span_in_context(NonRecordingSpan(remote))
        kind = SpanKind.SERVER if server else SpanKind.INTERNAL
        with self.tracer.start_as_current_span(
            name, context=context, kind=kind, attributes=dict(attributes)
        ) as current:
            yield current

    def trace_id(self) -> str | None:
        context = trace.get_current_span().get_span_context()
        return format(context.trace_id, "032x") if context.is_valid else None

    def headers(self) -> dict[str, str] | None:
        if not trace.get_current_span().get_span_context().is_valid:
            return None
        carrier: dict[str, str] = {}
        self.propagator.inject(carrier)
        return carrier

    def shutdown(self) -> None:
        self.provider.shutdown()
