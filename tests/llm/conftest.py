"""The LLM stand-in served over real HTTP on 127.0.0.1, and adapters pointed at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from app.local.llm.api import create_app
from app.local.llm.knobs import Knobs
from app.local.postgres import free_port
from app.local.server import ServerThread
from tests.support.llm_standin import ProviderOpener, StandinServer


@pytest.fixture(scope="module")
def standin_server() -> Iterator[StandinServer]:
    """Mounted at /llm as on the local stack: the adapters get the stack's base URLs."""
    app = create_app(Knobs())
    with ServerThread(Starlette(routes=[Mount("/llm", app)]), free_port()) as server:
        yield StandinServer(f"{server.url}/llm", app.state.standin)


@pytest.fixture(params=["httpx", "aiohttp"])
def open_provider(request: pytest.FixtureRequest, standin_server: StandinServer) -> ProviderOpener:
    """Every adapter test runs over both transports the factory can build."""
    return ProviderOpener(standin_server, request.param)
