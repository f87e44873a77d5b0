"""The whole product over real HTTP: gateway, Auth, PostgREST and LLM stand-ins, and the service."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from httpx_sse import connect_sse
from pydantic import SecretStr

from app.config import Settings
from app.local.auth.config import CONFIG_KEY, AuthConfig
from app.local.context import StackContext
from app.local.postgres import free_port
from app.local.server import ServerThread
from app.local.stack import LocalStack, build_app
from app.main import create_app
from tests.support.database import make_settings


@dataclass
class ChatStack:
    url: str
    ctx: StackContext
    settings: Settings
    superuser_dsn: str
    server: ServerThread | None = None

    @property
    def endpoint(self) -> str:
        return f"{self.url}/functions/v1/chat-stream"

    def new_user(self, *, expires_in: int = 3600, now: int | None = None) -> User:
        """A user row in auth.users (the trigger adds the profile) and an access token for it."""
        user_id, session_id = str(uuid.uuid4()), str(uuid.uuid4())
        email = f"u-{user_id[:8]}@example.com"
        with psycopg.connect(self.superuser_dsn, autocommit=True) as conn:
            conn.execute(
                "insert into auth.users (id, email, aud, role, created_at, updated_at)"
                " values (%s, %s, 'authenticated', 'authenticated', now(), now())",
                (user_id, email),
            )
            # A live session, as a sign-in makes: the service confirms it (SESSION_CHECK_SECONDS).
            conn.execute(
                "insert into auth.sessions (id, user_id, created_at, updated_at, aal)"
                " values (%s, %s, now(), now(), 'aal1')",
                (session_id, user_id),
            )
        token = self.ctx.keys.user_access_token(
            user_id=user_id,
            issuer=self.ctx.jwt_issuer,
            email=email,
            session_id=session_id,
            expires_in=expires_in,
            now=now,
        )
        return User(user_id, email, token, self)

    def signed_up_user(self, password: str = "correct horse battery") -> User:
        """A user who signed up through the Auth stand-in (`POST /auth/v1/signup`): its token is
        the one Auth minted, with Auth's `jwt_expiry` and a `session_id`."""
        email = f"s-{uuid.uuid4().hex[:10]}@example.com"
        response = httpx.post(
            f"{self.url}/auth/v1/signup",
            json={"email": email, "password": password},
            headers={"apikey": self.ctx.keys.anon_key},
            timeout=30,
        )
        response.raise_for_status()
        body = response.json()
        return User(body["user"]["id"], email, body["access_token"], self, password=password)

    def sign_in(self, user: User) -> str:
        """A fresh access token for `user` (the password grant), as the app gets after a refresh."""
        response = httpx.post(
            f"{self.url}/auth/v1/token",
            params={"grant_type": "password"},
            json={"email": user.email, "password": user.password},
            headers={"apikey": self.ctx.keys.anon_key},
            timeout=30,
        )
        response.raise_for_status()
        return str(response.json()["access_token"])

    def ledger(self, since: float = 0.0) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.url}/llm/_ledger", params={"since": since}, timeout=5)
        response.raise_for_status()
        return list(response.json())

    def rows(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.superuser_dsn, autocommit=True) as conn:
            return conn.execute(sql, params).fetchall()  # type: ignore[arg-type]


@dataclass
class User:
    id: str
    email: str
    token: str
    stack: ChatStack
    conversations: list[str] = field(default_factory=list)
    password: str = ""

    def conversation(self) -> str:
        with psycopg.connect(self.stack.superuser_dsn, autocommit=True) as conn:
            row = conn.execute(
                "insert into public.conversations (user_id, title)"
                " values (%s, 'test') returning id",
                (self.id,),
            ).fetchone()
        assert row is not None
        self.conversations.append(str(row[0]))
        return str(row[0])

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "apikey": self.stack.ctx.keys.anon_key}


@dataclass
class StreamResult:
    status: int
    headers: httpx.Headers
    events: list[dict[str, Any]]
    times: list[float]  # time.monotonic() at each event
    comments: int = 0
    body: Any = None

    @property
    def tokens(self) -> list[str]:
        return [e["content"] for e in self.events if e.get("type") == "token"]

    @property
    def last(self) -> dict[str, Any]:
        return self.events[-1]


def stream(
    stack: ChatStack,
    user: User | None,
    body: dict[str, Any] | bytes,
    *,
    headers: dict[str, str] | None = None,
    stop_after_tokens: int | None = None,
    timeout: float = 30.0,
) -> StreamResult:
    """POST to the chat stream and read its SSE events with httpx-sse (a real SSE client)."""
    hdrs = (user.headers() if user else {}) | {"Content-Type": "application/json"}
    hdrs |= headers or {}
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    events: list[dict[str, Any]] = []
    times: list[float] = []
    with httpx.Client(timeout=timeout) as client:
        with connect_sse(client, "POST", stack.endpoint, content=content, headers=hdrs) as source:
            response = source.response
            if not response.headers.get("content-type", "").startswith("text/event-stream"):
                response.read()
                return StreamResult(
                    response.status_code, response.headers, [], [], body=response.json()
                )
            for sse in source.iter_sse():
                events.append(json.loads(sse.data))
                times.append(time.monotonic())
                if (
                    stop_after_tokens is not None
                    and sum(1 for e in events if e.get("type") == "token") >= stop_after_tokens
                ):
                    break
            return StreamResult(response.status_code, response.headers, events, times)


def chat_settings(ctx: StackContext, outbox: Path, **overrides: object) -> Settings:
    base: dict[str, object] = {
        "supabase_url": ctx.api_url,
        "supabase_anon_key": SecretStr(ctx.keys.anon_key),
        "supabase_service_role_key": SecretStr(ctx.keys.service_role_key),
        "billing_attestation_key": SecretStr(ctx.keys.attestation_key.decode()),
        "auth_mode": "jwks",
        "jwt_issuer": ctx.jwt_issuer,
        "llm_provider": "anthropic",
        "llm_model": "claude-sonnet-4-5",
        "anthropic_base_url": f"{ctx.api_url}/llm",
        "anthropic_api_key": SecretStr("test-key"),
        "openai_base_url": f"{ctx.api_url}/llm/v1",
        "openai_api_key": SecretStr("test-key"),
        "llm_idle_timeout": 1.0,
        "heartbeat_seconds": 0.3,
        "outbox_dir": outbox,
        "outbox_replay_seconds": 0.2,
        "finish_backoff_seconds": 0.05,
        "finish_retries": 2,
        # These tests pin what a disconnect does at once; the resume tests turn the grace on.
        "disconnect_grace_seconds": 0,
    }
    return make_settings(**(base | overrides))


def start_chat_stack(
    local_stack: LocalStack,
    outbox: Path,
    *,
    db_port: int | None = None,
    auth_config: AuthConfig | None = None,
    **overrides: object,
) -> ChatStack:
    """The service behind the local stack's gateway; `auth_config` replaces the Auth stand-in's
    config.toml settings (a short `jwt_expiry`, say)."""
    port = free_port()
    ctx = StackContext(
        keys=local_stack.keys,
        api_url=f"http://127.0.0.1:{port}",
        db_port=db_port or local_stack.db_port,
        extra={CONFIG_KEY: auth_config} if auth_config is not None else {},
    )
    settings = chat_settings(ctx, outbox, **overrides)
    app = build_app(ctx, functions_app=create_app(settings))
    server = ServerThread(app, port).start()
    superuser = local_stack.pg.superuser_dsn.replace(
        f":{local_stack.db_port}/", f":{db_port or local_stack.db_port}/"
    )
    return ChatStack(ctx.api_url, ctx, settings, superuser, server)
