"""An Auth stand-in of its own, for tests that change its config.toml settings."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from app.local.auth.config import CONFIG_KEY, AuthConfig
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
