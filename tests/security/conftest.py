"""The security tests run against the same stack as tests/api: its session fixture, re-exported."""

from tests.api.conftest import chat_stack

__all__ = ["chat_stack"]
