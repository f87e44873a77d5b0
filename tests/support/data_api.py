"""The local stack's Auth and Data API over a test database, and the settings of a service there."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import SecretStr

from app.config import Settings
from app.local.context import StackContext
from app.local.postgres import free_port
from app.local.server import ServerThread
from app.local.stack import LocalStack, build_app
from tests.support.database import FreshDatabase, make_settings


@contextmanager
def data_api(local_stack: LocalStack, db: FreshDatabase) -> Iterator[StackContext]:
    """`/auth/v1` and `/rest/v1` on a port of their own, over `db` (a project's API)."""
    port = free_port()
    ctx = StackContext(
        keys=local_stack.keys,
        api_url=f"http://127.0.0.1:{port}",
        db_port=local_stack.db_port,
        db_name=db.name,
    )
    with ServerThread(build_app(ctx), port):
        yield ctx


def service_env(ctx: StackContext, key: str, outbox: Path) -> dict[str, str]:
    """The environment of a deployment against `ctx` (what README's settings section lists)."""
    return {
        "SUPABASE_URL": ctx.api_url,
        "SUPABASE_ANON_KEY": ctx.keys.anon_key,
        "SUPABASE_SERVICE_ROLE_KEY": ctx.keys.service_role_key,
        "BILLING_ATTESTATION_KEY": key,
        "JWT_ISSUER": ctx.jwt_issuer,
        "ANTHROPIC_API_KEY": "test-key",
        "ANTHROPIC_BASE_URL": f"{ctx.api_url}/llm",
        "OUTBOX_DIR": str(outbox),
    }


def service_settings(ctx: StackContext, key: str, outbox: Path) -> Settings:
    return make_settings(
        supabase_url=ctx.api_url,
        supabase_anon_key=SecretStr(ctx.keys.anon_key),
        supabase_service_role_key=SecretStr(ctx.keys.service_role_key),
        billing_attestation_key=SecretStr(key),
        jwt_issuer=ctx.jwt_issuer,
        anthropic_api_key=SecretStr("test-key"),
        anthropic_base_url=f"{ctx.api_url}/llm",
        outbox_dir=outbox,
    )
