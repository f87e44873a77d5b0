"""The chat-stream POST as a bare ASGI route, answered before FastAPI's middleware stack.

Through FastAPI a turn passed about a dozen layers (ServerError, CORS, request id, trace, body
limit, exception handling, router, `solve_dependencies`) and every write of its stream passed five
send wrappers. The route declares no parameters and answers its own errors, so none of that was
doing work for it: at c=100 it was about a twentieth of the worker's CPU. `EdgeApp` serves the
POST itself and gives everything else (health, resume, stop, CORS preflights, other methods) to
FastAPI as before.

What the stack gave this route it still gets, from the same code: the request id
(`request_id.assign_request_id`), the trace context and server span (`trace.request_trace`),
CORS (Starlette's `CORSMiddleware` around this one route, with the app's settings), AppErrors as
JSON (`errors`), and for a bug what `ServerErrorMiddleware` did: logged, a 500 in our shape if
nothing was sent yet, re-raised for the server. tests/api/test_edge.py holds the two side by side.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.errors import error_response, unexpected_error_response
from app.api.request_id import HEADER, assign_request_id
from app.api.stream import EventStreamResponse
from app.api.trace import request_trace
from app.errors import AppError

logger = logging.getLogger(__name__)

Endpoint = Callable[[Request], Awaitable[Response]]


def edge_route(endpoint: Endpoint, *, cors: Mapping[str, Any]) -> ASGIApp:
    """`endpoint` as an ASGI app with what the stack gave it, in the stack's order: a bug's 500
    outermost (so, as before, without CORS or request id headers), then CORS, then the rest."""

    async def respond(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            response = await endpoint(Request(scope, receive))
        except AppError as exc:
            response = error_response(exc)
        except Exception as exc:
            raise _Unanswered(exc) from exc
        # The id goes with the response's own headers: no wrapper on every later send.
        request_id = scope["state"]["http_request_id"]
        if isinstance(response, EventStreamResponse):
            response.stream_headers[HEADER.decode()] = request_id
        else:
            response.raw_headers.append((HEADER, request_id.encode()))
        await response(scope, receive, send)

    with_cors = CORSMiddleware(respond, **cors)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assign_request_id(scope)
        with request_trace(scope):
            try:
                await with_cors(scope, receive, send)
            except _Unanswered as unanswered:
                logger.error("unhandled error", exc_info=unanswered.error)
                await unexpected_error_response()(scope, receive, send)
                raise unanswered.error from None
            except Exception as exc:  # the response had started: the server ends the connection
                logger.error("unhandled error", exc_info=exc)
                raise

    return app


class _Unanswered(Exception):  # noqa: N818 - not an error of its own: it carries one outwards
    """A bug before the response started: the 500 is sent outside CORS, as the stack did."""

    def __init__(self, error: Exception) -> None:
        super().__init__(repr(error))
        self.error = error


class EdgeApp(FastAPI):
    """FastAPI, with POSTs to `edge_routes` answered by their ASGI apps before its stack."""

    edge_routes: dict[str, ASGIApp]

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.edge_routes = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            edge = self.edge_routes.get(_route_path(scope))
            if edge is not None:
                scope["app"] = self  # `request.app.state`, as under FastAPI
                await edge(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def _route_path(scope: Scope) -> str:
    """The path the router would match: without the `root_path` it is mounted under."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root) : len(root) + 1] in ("/", ""):
        return path[len(root) :]
    return path
