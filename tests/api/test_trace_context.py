"""W3C trace context end to end: the client's `traceparent` reaches the provider stand-in, the Data
API (PostgREST's `request.headers`, as the database sees them) and the request's log line; with
tracing on, the turn's spans are exported in the client's trace."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from collections.abc import Iterator

import psycopg
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from app.local.context import StackContext
from app.local.postgres import free_port
from app.local.server import ServerThread
from app.local.stack import LocalStack, build_app
from app.main import Overrides, create_app
from app.ops.logs import REQUEST_LOGGER
from tests.support.chat_stack import ChatStack, chat_settings, stream

pytestmark = pytest.mark.slow

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE}-{PARENT}-01"
TRACESTATE = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"

# What the Data API passed to the database: PostgREST (and the stand-in) set `request.headers`.
_RECORDER = """
create schema trace_probe;
create table trace_probe.seen (role text, traceparent text, tracestate text);
create function trace_probe.record() returns trigger language plpgsql security definer
set search_path = '' as $$
begin
  insert into trace_probe.seen values (
    new.role,
    current_setting('request.headers', true)::jsonb ->> 'traceparent',
    current_setting('request.headers', true)::jsonb ->> 'tracestate');
  return new;
end $$;
create trigger trace_probe after insert on public.messages
  for each row execute function trace_probe.record();
"""


@pytest.fixture
def data_api_headers(chat_stack: ChatStack) -> Iterator[ChatStack]:
    with psycopg.connect(chat_stack.superuser_dsn, autocommit=True) as conn:
        conn.execute(_RECORDER)
    try:
        yield chat_stack
    finally:
        with psycopg.connect(chat_stack.superuser_dsn, autocommit=True) as conn:
            conn.execute("drop trigger trace_probe on public.messages")
            conn.execute("drop schema trace_probe cascade")


def _entries_since(stack: ChatStack, since: float) -> list[dict[str, object]]:
    return stack.ledger(since)


def test_traceparent_from_the_client_reaches_the_provider_the_data_api_and_the_log_line(
    data_api_headers: ChatStack, caplog: pytest.LogCaptureFixture
) -> None:
    stack = data_api_headers
    user = stack.new_user()
    conv = user.conversation()
    caplog.set_level(logging.INFO, logger=REQUEST_LOGGER)
    since = time.monotonic()

    result = stream(
        stack,
        user,
        {"message": "hi [[standin tokens=3]]", "conversationId": conv},
        headers={"traceparent": TRACEPARENT, "tracestate": TRACESTATE},
    )

    assert result.last["type"] == "done"
    (entry,) = _entries_since(stack, since)
    assert entry["traceparent"] == TRACEPARENT  # tracing off: passed on unchanged
    seen = stack.rows("select role, traceparent, tracestate from trace_probe.seen order by role")
    assert seen == [  # chat_begin stored the question, chat_finish the answer
        ("assistant", TRACEPARENT, TRACESTATE),
        ("user", TRACEPARENT, TRACESTATE),
    ]
    (record,) = [r for r in caplog.records if r.name == REQUEST_LOGGER]
    assert record.trace_id == TRACE


@pytest.mark.parametrize(
    "traceparent",
    [f"00-{TRACE}-{PARENT}-01-extra", f"00-{TRACE.upper()}-{PARENT}-01", "00-00-00-00"],
)
def test_malformed_traceparent_is_ignored_and_passed_on_nowhere(
    data_api_headers: ChatStack, caplog: pytest.LogCaptureFixture, traceparent: str
) -> None:
    stack = data_api_headers
    user = stack.new_user()
    caplog.set_level(logging.INFO, logger=REQUEST_LOGGER)
    since = time.monotonic()

    result = stream(
        stack,
        user,
        {"message": "hi [[standin tokens=2]]", "conversationId": user.conversation()},
        headers={"traceparent": traceparent, "tracestate": TRACESTATE},
    )

    assert result.last["type"] == "done"
    (entry,) = _entries_since(stack, since)
    assert entry["traceparent"] is None
    assert stack.rows("select distinct traceparent, tracestate from trace_probe.seen") == [
        (None, None)
    ]
    (record,) = [r for r in caplog.records if r.name == REQUEST_LOGGER]
    assert record.trace_id is None


@pytest.fixture(scope="module")
def traced_stack(
    local_stack: LocalStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ChatStack, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    port = free_port()
    ctx = StackContext(
        keys=local_stack.keys, api_url=f"http://127.0.0.1:{port}", db_port=local_stack.db_port
    )
    settings = chat_settings(ctx, tmp_path_factory.mktemp("outbox"))
    app = create_app(settings, overrides=Overrides(span_exporter=exporter))
    server = ServerThread(build_app(ctx, functions_app=app), port).start()
    stack = ChatStack(ctx.api_url, ctx, settings, local_stack.pg.superuser_dsn, server)
    yield stack, exporter
    server.stop()


def _by_name(spans: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    return {span.name: span for span in spans}


def test_spans_of_a_turn_are_exported_in_the_clients_trace_when_configured(
    traced_stack: tuple[ChatStack, InMemorySpanExporter], caplog: pytest.LogCaptureFixture
) -> None:
    stack, exporter = traced_stack
    user = stack.new_user()
    caplog.set_level(logging.INFO, logger=REQUEST_LOGGER)
    exporter.clear()
    since = time.monotonic()

    result = stream(
        stack,
        user,
        {"message": "hi [[standin tokens=3]]", "conversationId": user.conversation()},
        headers={"traceparent": TRACEPARENT, "tracestate": TRACESTATE},
    )
    assert result.last["type"] == "done"

    deadline = time.monotonic() + 5  # the server span ends after the last byte is sent
    while "POST /functions/v1/chat-stream" not in _by_name(exporter.get_finished_spans()):
        assert time.monotonic() < deadline, [s.name for s in exporter.get_finished_spans()]
        time.sleep(0.02)
    spans = _by_name(exporter.get_finished_spans())
    server = spans["POST /functions/v1/chat-stream"]
    assert {"auth.verify", "db.chat_begin", "llm.stream", "db.chat_finish"} <= set(spans)
    for span in spans.values():
        assert format(span.context.trace_id, "032x") == TRACE
    assert server.parent is not None and format(server.parent.span_id, "016x") == PARENT
    for name in ("auth.verify", "db.chat_begin", "llm.stream", "db.chat_finish"):
        assert spans[name].parent is not None
        assert spans[name].parent.span_id == server.context.span_id, name
    llm = spans["llm.stream"]
    assert [event.name for event in llm.events] == ["first_token"]
    assert spans["db.chat_begin"].end_time <= llm.start_time  # begin, then the provider
    assert llm.end_time <= spans["db.chat_finish"].start_time  # then the finish
    # The provider saw our span as its parent, in the client's trace, with the client's state.
    (entry,) = stack.ledger(since)
    assert entry["traceparent"] == f"00-{TRACE}-{format(llm.context.span_id, '016x')}-01"
    (record,) = [r for r in caplog.records if r.name == REQUEST_LOGGER]
    assert record.trace_id == TRACE


def test_tracing_off_imports_no_opentelemetry_sdk_exporter_or_backend() -> None:
    probe = """
import sys, asyncio
from app.api.trace import TraceContextMiddleware
from app.main import create_app
from app.ops import tracing
from tests.support.database import make_settings

create_app(make_settings(supabase_url="http://127.0.0.1:9"))
assert tracing.configure("", "chat-stream") is False
with tracing.span("db.chat_begin"):
    pass

async def app(scope, receive, send):
    assert tracing.outbound_headers() == {"traceparent": "@TRACEPARENT@"}

scope = {"type": "http", "path": "/functions/v1/chat-stream", "method": "POST",
         "headers": [(b"traceparent", b"@TRACEPARENT@")]}
asyncio.run(TraceContextMiddleware(app)(scope, None, None))
loaded = sorted(m for m in sys.modules
                if m.startswith(("opentelemetry.sdk", "opentelemetry.exporter", "app.ops.otel")))
print(loaded)
""".replace("@TRACEPARENT@", TRACEPARENT)
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )

    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
