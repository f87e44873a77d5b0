"""Fixtures for the Supabase schema tests: two fresh users with a conversation, message, usage."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.local.stack import LocalStack
from tests.supabase.rls import World, create_user, delete_auth_users, seed


@pytest.fixture
def world(local_stack: LocalStack) -> Iterator[World]:
    a, b = create_user(local_stack), create_user(local_stack)
    yield World(local_stack, seed(local_stack, a), seed(local_stack, b))
    delete_auth_users(local_stack, a, b)
