"""`chat-stream dev`: the whole local stack and the service in the foreground until Ctrl-C."""

from __future__ import annotations

import logging
import signal
import sys
import time
import uuid

import httpx
import uvicorn
from pydantic import SecretStr

from app.config import Settings
from app.local.auth.mail import Mail, describe, mailbox_of
from app.local.context import StackContext
from app.local.stack import LocalStack, build_app, read_status
from app.ops.logs import logging_config

logger = logging.getLogger(__name__)

DEMO_MESSAGE = "I keep putting off my thesis. Where do I even start?"
STANDIN_KEY = "local-standin-key"


def uses_real_providers(settings: Settings) -> bool:
    """Real keys or base URLs in the environment mean real providers; otherwise the stand-in."""
    defaults = Settings.model_construct()
    return bool(
        settings.anthropic_api_key.get_secret_value()
        or settings.openai_api_key.get_secret_value()
        or settings.anthropic_base_url != defaults.anthropic_base_url
        or settings.openai_base_url != defaults.openai_base_url
    )


def service_settings(settings: Settings, stack: LocalStack) -> Settings:
    """The service's settings when it runs inside the local stack."""
    ctx = stack.ctx
    update: dict[str, object] = {
        "supabase_url": ctx.api_url,
        # The 2026 key names, as a new project has them; the legacy JWT keys stay unset.
        "supabase_publishable_key": SecretStr(ctx.keys.publishable_key),
        "supabase_secret_key": SecretStr(ctx.keys.secret_key),
        "billing_attestation_key": SecretStr(ctx.keys.attestation_key.decode()),
        "auth_mode": "rotation",
        "jwt_issuer": ctx.jwt_issuer,
        "outbox_dir": stack.stack_dir / "outbox",
    }
    if not uses_real_providers(settings):
        update |= {
            "anthropic_base_url": f"{ctx.api_url}/llm",
            "openai_base_url": f"{ctx.api_url}/llm/v1",
            "anthropic_api_key": SecretStr(STANDIN_KEY),
            "openai_api_key": SecretStr(STANDIN_KEY),
        }
    return settings.model_copy(update=update)


async def mint_demo(ctx: StackContext) -> dict[str, str]:
    """A fresh user (through the Auth stand-in) and a conversation (through PostgREST)."""
    email = f"demo-{uuid.uuid4().hex[:8]}@example.com"
    headers = {"apikey": ctx.keys.publishable_key, "X-Supabase-Api-Version": "2024-01-01"}
    async with httpx.AsyncClient(base_url=ctx.api_url, timeout=10) as http:
        signup = await http.post(
            "/auth/v1/signup", json={"email": email, "password": uuid.uuid4().hex}, headers=headers
        )
        signup.raise_for_status()
        token = signup.json()["access_token"]
        conversation = await http.post(
            "/rest/v1/conversations",
            json={"title": "Getting started"},
            headers=headers
            | {"Authorization": f"Bearer {token}", "Prefer": "return=representation"},
        )
        conversation.raise_for_status()
    return {"email": email, "token": token, "conversation_id": conversation.json()[0]["id"]}


def demo_curl(ctx: StackContext, demo: dict[str, str]) -> str:
    body = f'{{"message":"{DEMO_MESSAGE}","conversationId":"{demo["conversation_id"]}"}}'
    return (
        f"curl -sSN {ctx.api_url}/functions/v1/chat-stream \\\n"
        f"  -H 'Authorization: Bearer {demo['token']}' \\\n"
        f"  -H 'apikey: {ctx.keys.publishable_key}' \\\n"
        f"  -H 'Content-Type: application/json' \\\n"
        f"  -d '{body}'"
    )


def print_mail_to_stdout(mail: Mail) -> None:
    print(describe(mail), flush=True)


def run_dev(settings: Settings, *, print_curl: bool = True, print_mail: bool = False) -> int:
    from app.main import create_app  # noqa: PLC0415 - the service is optional for the stack

    began = time.perf_counter()
    running = read_status(settings.local_stack_dir)
    if running:
        print(f"chat-stream dev is already running (pid {running['pid']}) at {running['api_url']}")
        return 1
    stack = LocalStack(settings)
    if print_mail:
        mailbox_of(stack.ctx).subscribe(print_mail_to_stdout)
    stack.start_database()
    try:
        service = service_settings(settings, stack)
        app = build_app(stack.ctx, functions_app=create_app(service))
        config = uvicorn.Config(
            app,
            host=settings.api_host,
            port=stack.api_port,
            log_level="warning",
            # uvicorn's lines in the same readable form as ours (request lines say why a token
            # was refused, in words).
            log_config=logging_config(settings.log_level, json_lines=False),
            lifespan="on",
        )
        server = uvicorn.Server(config)
        original_startup = server.startup

        async def startup(sockets: object = None) -> None:
            await original_startup(sockets)  # type: ignore[arg-type]
            ready = time.perf_counter() - began
            stack.write_status({"ready_seconds": round(ready, 3)})
            providers = "real providers" if uses_real_providers(settings) else "the LLM stand-in"
            print(f"chat-stream dev: local stack ready in {ready:.2f}s at {stack.ctx.api_url}")
            print(f"  database: {stack.ctx.db_url}")
            print(f"  mail:     {stack.ctx.api_url}/mail/ (auth emails; API: /mail/api/v1/)")
            print(f"  model:    {service.llm_provider}/{service.llm_model} via {providers}")
            print(f"  publishable key: {stack.ctx.keys.publishable_key}")
            print(f"  secret key:      {stack.ctx.keys.secret_key}")
            print(f"  signing key:     {stack.ctx.keys.kid} ({stack.ctx.keys.algorithm})")
            print("  `chat-stream status` shows the rest, the legacy anon/service_role keys")
            print("  (deprecated) too. Ctrl-C stops everything.")
            if print_curl:
                try:
                    demo = await mint_demo(stack.ctx)
                except httpx.HTTPError as exc:
                    print(f"  (could not mint a demo user: {exc})")
                else:
                    print(f"\nTest user {demo['email']}; its token is valid for an hour.")
                    print("Paste this to stream an answer:\n")
                    print(demo_curl(stack.ctx, demo), flush=True)

        server.startup = startup  # type: ignore[method-assign]
        # uvicorn re-raises the signal it caught after shutting down; make SIGTERM an exit that
        # runs our `finally` (stopping PostgreSQL) instead of killing the process outright.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        stack.clear_status()
        stack.stop_database()
    return 0
