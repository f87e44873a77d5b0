"""The local Supabase: embedded PostgreSQL + Auth, PostgREST and LLM stand-ins on one port.

`LocalStack` owns the database lifecycle (start, bootstrap, migrations) and builds the ASGI app
that serves `/auth/v1`, `/rest/v1`, `/llm/v1/...` and, when a service app is given,
`/functions/v1`. `chat-stream dev` runs it in the foreground; the tests run it in a thread.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from psycopg_pool import AsyncConnectionPool
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route
from starlette.types import ASGIApp

from app.config import Settings
from app.db.attestation_keys import provision_attestation_key
from app.db.migrate import Migration, apply_migrations, default_migrations_dir
from app.local.cluster import prepare_local_cluster
from app.local.context import StackContext
from app.local.gateway import ApiKeyGateway, signed_api_key
from app.local.keys_config import KeysConfig, load_keys_config, stack_keys
from app.local.pg_install import find_install
from app.local.postgres import EmbeddedPostgres

logger = logging.getLogger(__name__)

STATUS_FILE = "status.json"


def open_pools(ctx: StackContext, *, max_size: int = 20) -> list[AsyncConnectionPool]:
    ctx.rest_pool = AsyncConnectionPool(
        ctx.dsn("authenticator"), min_size=2, max_size=max_size, open=False, name="rest"
    )
    ctx.auth_pool = AsyncConnectionPool(
        ctx.dsn("supabase_auth_admin"),
        min_size=1,
        max_size=max(4, max_size // 4),
        open=False,
        name="auth",
    )
    return [ctx.rest_pool, ctx.auth_pool]


def build_app(ctx: StackContext, *, functions_app: ASGIApp | None = None) -> Starlette:
    """The gateway app. Sub-apps are mounted; their state lives in `ctx` and this lifespan."""
    from app.local.auth.app import create_app as create_auth_app  # noqa: PLC0415 - cheap import
    from app.local.auth.mailapi import create_mail_app  # noqa: PLC0415
    from app.local.llm.api import create_app as create_llm_app  # noqa: PLC0415
    from app.local.rest.api import create_app as create_rest_app  # noqa: PLC0415
    from app.local.webhooks.sink import create_webhook_app  # noqa: PLC0415

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        pools = open_pools(ctx)
        for pool in pools:
            await pool.open(wait=True, timeout=30)
        try:
            async with contextlib.AsyncExitStack() as stack:
                if functions_app is not None:
                    router = getattr(functions_app, "router", None)
                    if router is not None:
                        await stack.enter_async_context(router.lifespan_context(functions_app))
                yield
        finally:
            for pool in pools:
                await pool.close()

    async def health(_: object) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    routes: list[Route | Mount] = [
        Route("/health", health),
        Mount(
            "/auth/v1",
            ApiKeyGateway(
                create_auth_app(ctx),
                key_to_jwt=ctx.api_keys,
                secret_keys=ctx.secret_api_keys,
                open_paths=(
                    "/.well-known/jwks.json",
                    "/.well-known/openid-configuration",
                    "/health",
                    "/settings",
                ),
                passthrough_prefixes=("/verify", "/callback", "/authorize"),
                forward_legacy_key_as_is=True,
                minted_key=signed_api_key(lambda: ctx.keys),
                key_required=False,  # the CLI's Kong checks no key on /auth/v1
            ),
        ),
        Mount("/mail", create_mail_app(ctx)),  # the local mail sink (Mailpit's API shape)
        Mount(
            "/rest/v1",
            ApiKeyGateway(
                create_rest_app(ctx),
                key_to_jwt=ctx.api_keys,
                secret_keys=ctx.secret_api_keys,
                minted_key=signed_api_key(lambda: ctx.keys),
            ),
        ),
        Mount("/llm", create_llm_app()),
        Mount("/webhooks", create_webhook_app()),  # the local webhook sink (budget alerts)
    ]
    if functions_app is not None:
        # The service owns its full paths (/functions/v1/chat-stream, /healthz, ...): mount at root.
        routes.append(Mount("", app=functions_app))
    return Starlette(routes=routes, lifespan=lifespan)


class LocalStack:
    """Start/stop the embedded database and describe the stack; serving is the caller's job."""

    def __init__(
        self,
        settings: Settings,
        *,
        stack_dir: Path | None = None,
        api_port: int | None = None,
        db_port: int | None = None,
        durable: bool = True,
        keys_config: KeysConfig | None = None,
    ) -> None:
        self.settings = settings
        self.stack_dir = Path(stack_dir or settings.local_stack_dir).absolute()
        self.api_port = api_port or settings.api_port
        self.db_port = db_port or settings.db_port
        self.keys = stack_keys(self.stack_dir, keys_config or load_keys_config())
        self.pg = EmbeddedPostgres(
            self.stack_dir / "pgdata",
            self.db_port,
            find_install(settings.pg_bin, prefer_wheel=settings.pg_use_wheel),
            durable=durable,
            log_path=self.stack_dir / "postgres.log",
        )
        self.applied: list[Migration] = []
        self.ctx = StackContext(
            keys=self.keys,
            api_url=f"http://{settings.api_host}:{self.api_port}",
            db_port=self.db_port,
        )

    def start_database(self) -> None:
        t0 = time.perf_counter()
        self.pg.start()
        t1 = time.perf_counter()
        prepare_local_cluster(self.pg.superuser_dsn)
        self.applied = apply_migrations(self.ctx.db_url, default_migrations_dir())
        provision_attestation_key(self.ctx.db_url, self.keys.attestation_key)
        t2 = time.perf_counter()
        logger.info(
            "database ready in %.2fs, %d migration(s) in %.2fs", t1 - t0, len(self.applied), t2 - t1
        )

    def stop_database(self) -> None:
        self.pg.stop()

    def write_status(self, extra: dict[str, Any] | None = None) -> Path:
        path = self.stack_dir / STATUS_FILE
        data = self.ctx.status() | {"pid": os.getpid()} | (extra or {})
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2)
        return path

    def clear_status(self) -> None:
        (self.stack_dir / STATUS_FILE).unlink(missing_ok=True)


def read_status(stack_dir: Path) -> dict[str, Any] | None:
    """The running stack's status, or None when no live stack owns `stack_dir`."""
    path = Path(stack_dir) / STATUS_FILE
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    try:
        os.kill(int(data["pid"]), 0)
    except (OSError, KeyError, ValueError):
        return None
    return data
