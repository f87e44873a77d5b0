"""`chat-stream check` against the session's local stack, as a Supabase project."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from app.config import Settings
from app.local.server import ServerThread
from app.local.stack import LocalStack
from tests.support.database import make_settings


@pytest.fixture
def project(local_stack: LocalStack, stack_server: ServerThread, tmp_path: Path) -> Settings:
    """Settings of a healthy deployment against the local stack."""
    ctx, keys = local_stack.ctx, local_stack.keys
    assert stack_server.url == ctx.api_url
    return make_settings(
        supabase_url=ctx.api_url,
        supabase_anon_key=SecretStr(keys.anon_key),
        supabase_service_role_key=SecretStr(keys.service_role_key),
        billing_attestation_key=SecretStr(keys.attestation_key.decode()),
        jwt_issuer=ctx.jwt_issuer,
        anthropic_api_key=SecretStr("test-key"),
        anthropic_base_url=f"{ctx.api_url}/llm",
        llm_model="claude-sonnet-4-5",
        outbox_dir=tmp_path / "outbox",
    )
