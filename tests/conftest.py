"""Session fixtures: one embedded PostgreSQL (and the local stack over real HTTP) per test run."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from app.config import Settings
from app.db.migrate import default_migrations_dir
from app.local.auth.config import CONFIG_KEY, load_auth_config
from app.local.cluster import ensure_bootstrap
from app.local.postgres import LOCAL_PASSWORD, free_port
from app.local.server import ServerThread
from app.local.stack import LocalStack, build_app

ROOT = Path(__file__).resolve().parents[1]
MIGRATIONS = default_migrations_dir()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def make_settings(**overrides: object) -> Settings:
    """Settings for tests: never read the developer's .env."""
    return Settings(_env_file=None, **overrides)  # type: ignore[call-arg]


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


@dataclass(frozen=True)
class FreshDatabase:
    name: str
    superuser_dsn: str
    dsn: str  # as `postgres`, the non-superuser that owns user objects (as on Supabase)


@contextmanager
def fresh_database(local_stack: LocalStack) -> Iterator[FreshDatabase]:
    """An empty database on the session cluster, bootstrapped like Supabase, dropped after."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = local_stack.pg.superuser_dsn
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    try:
        db = FreshDatabase(
            name=name,
            superuser_dsn=local_stack.pg.dsn(dbname=name),
            dsn=local_stack.pg.dsn("postgres", LOCAL_PASSWORD, name),
        )
        ensure_bootstrap(db.superuser_dsn)
        yield db
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database {} with (force)").format(sql.Identifier(name)))


@pytest.fixture
def fresh_db(local_stack: LocalStack) -> Iterator[FreshDatabase]:
    """An empty database on the session cluster, bootstrapped like Supabase, no migrations."""
    with fresh_database(local_stack) as db:
        yield db
