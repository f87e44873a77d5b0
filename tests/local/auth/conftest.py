"""A private Auth stand-in per test that needs settings of its own (rate limits, flags).

It shares the session cluster and keys with `local_stack` but has its own app, pools, limiter
state and mailbox, served on its own port over real HTTP.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

import pytest

from app.local.auth.config import CONFIG_KEY, AuthConfig, load_auth_config
from app.local.context import StackContext
from app.local.postgres import free_port
from app.local.server import ServerThread
from app.local.stack import LocalStack, build_app

StandinFactory = Callable[[AuthConfig], ServerThread]


@contextmanager
def private_standin(local_stack: LocalStack, config: AuthConfig) -> Iterator[ServerThread]:
    port = free_port()
    ctx = StackContext(
        keys=local_stack.keys,
        api_url=f"http://127.0.0.1:{port}",
        db_port=local_stack.db_port,
        extra={CONFIG_KEY: config},
    )
    server = ServerThread(build_app(ctx), port).start()
    server.ctx = ctx  # type: ignore[attr-defined]
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def standin(local_stack: LocalStack) -> Iterator[StandinFactory]:
    """`standin(config)` -> a running private stand-in, stopped after the test."""
    with ExitStack() as stack:

        def start(config: AuthConfig) -> ServerThread:
            return stack.enter_context(private_standin(local_stack, config))

        yield start


@pytest.fixture
def project_config() -> AuthConfig:
    """`supabase/config.toml` as the stand-in reads it (rate limits on)."""
    return load_auth_config()
