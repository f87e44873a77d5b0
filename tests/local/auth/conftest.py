"""A private Auth stand-in per test that needs settings of its own (rate limits, flags).

It shares the session cluster and keys with `local_stack` but has its own app, pools, limiter
state and mailbox, served on its own port over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from app.local.auth.config import AuthConfig, load_auth_config
from app.local.server import ServerThread
from app.local.stack import LocalStack
from tests.support.auth_standin import StandinFactory, private_standin


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
