"""Every route reads its own request: no typed parameters, so FastAPI's validation never runs.

That is why `app.api.errors` has no `RequestValidationError` handler: the body rules (413, 415,
400) are `app.api.body`'s, in the order the design gives, with the API's error JSON.
"""

from __future__ import annotations

from fastapi.routing import APIRoute

from app.api import chat_stream, health


def test_routes_declare_no_parameters_fastapi_would_validate() -> None:
    # The routers `app.main.create_app` includes (and nothing else serves a route).
    routes = [r for m in (chat_stream, health) for r in m.router.routes if isinstance(r, APIRoute)]

    assert {r.path for r in routes} >= {"/functions/v1/chat-stream", "/healthz", "/readyz"}
    for route in routes:
        d = route.dependant
        params = [*d.path_params, *d.query_params, *d.header_params, *d.cookie_params]
        assert (params, d.body_params, d.dependencies) == ([], [], []), route.path
