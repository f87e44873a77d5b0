"""Fixtures shared by the stand-in tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.local.rest_support import StatusLog


@pytest.fixture
async def http() -> AsyncIterator[tuple[httpx.AsyncClient, StatusLog]]:
    """A raw client that records every response's status (for the no-5xx assertions)."""
    log = StatusLog()
    async with httpx.AsyncClient(timeout=30, event_hooks={"response": [log]}) as client:
        yield client, log
