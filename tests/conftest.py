"""Session fixtures: one embedded PostgreSQL (and the local stack over real HTTP) per test run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.local.auth.config import CONFIG_KEY, load_auth_config
from app.local.postgres import free_port
from app.local.server import ServerThread
from app.local.stack import LocalStack, build_app
from tests.support.chat_stack import ChatStack, start_chat_stack
from tests.support.database import FreshDatabase, fresh_database, make_settings
from tests.support.supabase_cli import report_header


def pytest_report_header() -> str:
    return report_header()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    stack_dir = tmp_path_factory.mktemp("stack")
    settings = make_settings(local_stack_dir=stack_dir)
    stack = LocalStack(
        settings, stack_dir=stack_dir, api_port=free_port(), db_port=free_port(), durable=False
    )
    # One run signs up hundreds of users from 127.0.0.1: the shared stack has no rate limits
    # (tests/local/auth runs its own stand-in with them on).
    stack.ctx.extra[CONFIG_KEY] = load_auth_config().without_rate_limits()
    stack.start_database()
    yield stack
    stack.stop_database()


@pytest.fixture(scope="session")
def stack_server(local_stack: LocalStack) -> Iterator[ServerThread]:
    """The gateway with /auth/v1, /rest/v1 and /llm served on 127.0.0.1 (real HTTP)."""
    server = ServerThread(build_app(local_stack.ctx), local_stack.api_port).start()
    yield server
    server.stop()


@pytest.fixture
def fresh_db(local_stack: LocalStack) -> Iterator[FreshDatabase]:
    """An empty database on the session cluster, bootstrapped like Supabase, no migrations."""
    with fresh_database(local_stack) as db:
        yield db


@pytest.fixture(scope="session")
def chat_stack(
    local_stack: LocalStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ChatStack]:
    stack = start_chat_stack(local_stack, tmp_path_factory.mktemp("outbox"))
    yield stack
    assert stack.server is not None
    stack.server.stop()
