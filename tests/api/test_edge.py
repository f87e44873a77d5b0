"""The chat-stream POST skips FastAPI's middleware stack and answers exactly as it did through it.

Two copies of the app over real HTTP: one as `create_app` builds it (the POST is an edge route)
and one with its edge routes removed (the POST goes through CORS, request id, trace context,
FastAPI's router and exception handlers, as before). Every answer that needs no database must be
the same, byte for byte, header for header (but the date and a generated request id).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.deps import Services
from app.api.edge import EdgeApp, _route_path
from app.core.domain import Caller
from app.local.postgres import free_port
from app.local.server import ServerThread
from app.main import create_app
from tests.support.database import make_settings

ORIGIN = "https://app.example"
GENERATED = "<generated>"


@dataclass
class Served:
    url: str
    app: EdgeApp
    stack_calls: list[str]


class _Broken:
    """A verifier with a bug: what a 500 looks like."""

    async def verify(self, authorization: str | None) -> Caller:
        raise RuntimeError(f"bug while verifying {authorization!r}")


def _counting(app: ASGIApp, calls: list[str]) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    async def counted(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            calls.append(f"{scope['method']} {scope['path']}")
        await app(scope, receive, send)

    return counted


def _serve(*, edge: bool) -> Iterator[Served]:
    settings = make_settings(
        supabase_url="http://127.0.0.1:9", cors_origins=[ORIGIN], max_body_bytes=1024
    )
    app = create_app(settings)
    assert isinstance(app, EdgeApp)
    if not edge:
        app.edge_routes = {}
    calls: list[str] = []
    with ServerThread(app, free_port()) as server:
        assert app.middleware_stack is not None  # built by the lifespan
        app.middleware_stack = _counting(app.middleware_stack, calls)
        yield Served(server.url, app, calls)


@pytest.fixture(scope="module")
def with_edge() -> Iterator[Served]:
    yield from _serve(edge=True)


@pytest.fixture(scope="module")
def through_stack() -> Iterator[Served]:
    yield from _serve(edge=False)


def _answer(served: Served, headers: dict[str, str], body: bytes) -> tuple[object, ...]:
    response = httpx.post(
        f"{served.url}/functions/v1/chat-stream", headers=headers, content=body, timeout=10
    )
    sent_id = {k.lower(): v for k, v in headers.items()}.get("x-request-id")
    shown = sorted(
        (name, GENERATED if name == "x-request-id" and value != sent_id else value)
        for name, value in response.headers.multi_items()
        if name != "date"
    )
    return response.status_code, response.content, shown


BODY = b'{"message": "hi", "conversationId": "00000000-0000-4000-8000-000000000001"}'
CASES = {
    "no token": ({"content-type": "application/json"}, BODY),
    "allowed origin": ({"origin": ORIGIN}, BODY),
    "other origin": ({"origin": "https://evil.example"}, BODY),
    "client request id": ({"x-request-id": "client-req-7", "origin": ORIGIN}, BODY),
    "unsafe request id": ({"x-request-id": "a b\tc"}, BODY),
    "traceparent": ({"traceparent": "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"}, BODY),
    "not JSON": ({"authorization": "Bearer x"}, b"{nope"),
    "too large": ({}, b" " * 4096),
    "wrong media type": ({"content-type": "text/plain"}, BODY),
    "two tokens": ({"authorization": "Bearer a, Bearer b"}, BODY),
    "bad token": ({"authorization": "Bearer not.a.jwt"}, BODY),
}


@pytest.mark.parametrize("case", list(CASES))
def test_edge_route_answers_each_refusal_exactly_as_through_the_middleware_stack(
    with_edge: Served, through_stack: Served, case: str
) -> None:
    headers, body = CASES[case]
    with_edge.stack_calls.clear()

    ours = _answer(with_edge, headers, body)
    theirs = _answer(through_stack, headers, body)

    assert ours == theirs
    assert with_edge.stack_calls == []  # answered before FastAPI's stack
    assert through_stack.stack_calls[-1] == "POST /functions/v1/chat-stream"


def test_edge_route_answers_a_bug_with_the_same_500_and_reraises(
    with_edge: Served, through_stack: Served
) -> None:
    services: list[Services] = [s.app.state.services for s in (with_edge, through_stack)]
    verifiers = [s.verifier for s in services]
    for each in services:
        each.verifier = _Broken()
    try:
        ours = _answer(with_edge, {"origin": ORIGIN}, BODY)
        theirs = _answer(through_stack, {"origin": ORIGIN}, BODY)
    finally:
        for each, verifier in zip(services, verifiers, strict=True):
            each.verifier = verifier

    assert ours == theirs
    assert ours[0] == 500


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/functions/v1/chat-stream"),
        ("OPTIONS", "/functions/v1/chat-stream"),
        ("GET", "/healthz"),
        ("POST", "/functions/v1/chat-stream/turns/00000000-0000-4000-8000-000000000001/stop"),
    ],
)
def test_edge_app_leaves_every_other_request_to_fastapi(
    with_edge: Served, through_stack: Served, method: str, path: str
) -> None:
    headers = {"origin": ORIGIN, "access-control-request-method": "POST"}
    with_edge.stack_calls.clear()

    ours = httpx.request(method, f"{with_edge.url}{path}", headers=headers, timeout=10)
    theirs = httpx.request(method, f"{through_stack.url}{path}", headers=headers, timeout=10)

    assert (ours.status_code, ours.content) == (theirs.status_code, theirs.content)
    assert with_edge.stack_calls == [f"{method} {path}"]


@pytest.mark.parametrize(
    ("path", "root_path", "expected"),
    [
        ("/functions/v1/chat-stream", "", "/functions/v1/chat-stream"),
        ("/api/functions/v1/chat-stream", "/api", "/functions/v1/chat-stream"),
        ("/apix/functions/v1/chat-stream", "/api", "/apix/functions/v1/chat-stream"),
        ("/functions/v1/chat-stream", "/other", "/functions/v1/chat-stream"),
    ],
)
def test_edge_route_path_matches_as_the_router_does(
    path: str, root_path: str, expected: str
) -> None:
    assert _route_path({"path": path, "root_path": root_path}) == expected


def test_create_app_serves_the_chat_stream_post_as_an_edge_route() -> None:
    app: FastAPI = create_app(make_settings(supabase_url="http://127.0.0.1:9"))

    assert isinstance(app, EdgeApp)
    assert set(app.edge_routes) == {"/functions/v1/chat-stream", "/functions/v1/chat-stream/"}
