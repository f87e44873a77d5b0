"""The composition root: settings in, a FastAPI app out, shared clients owned by the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx
from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from app.alerts.delivery import AlertDelivery, deliver_forever
from app.api import chat_stream, health, resume, stop
from app.api.admission import Admission, LagMonitor
from app.api.deps import Services
from app.api.drain import Drain
from app.api.edge import EdgeApp, edge_route
from app.api.errors import install_error_handlers
from app.api.followers import Followers
from app.api.pending import PendingRequests
from app.api.request_id import RequestIdMiddleware
from app.api.trace import TraceContextMiddleware
from app.auth import TokenVerifier
from app.auth.sighup import refetch_on_sighup
from app.chat.feed import FeedRegistry
from app.chat.policy import ChatPolicy
from app.chat.resume import Resumer
from app.chat.service import ChatService
from app.config import Settings, configured_providers, get_settings
from app.config.keys import publishable_key, secret_key
from app.core.domain import Caps
from app.core.ports import Provider
from app.core.pricing import Pricer
from app.errors import AppError
from app.llm.aiohttp_transport import HonestAiohttpTransport
from app.llm.factory import build_providers
from app.ops import tracing
from app.ops.logs import configure_logging
from app.ops.metrics import ChatMetrics
from app.store.attestation import Attestor, key_bytes
from app.store.chat_store import SupabaseChatStore
from app.store.data_api import DataApi, data_api_client
from app.store.outbox import Outbox, replay_forever

logger = logging.getLogger(__name__)

# Pauses between JWKS warm-up attempts while Auth does not answer yet (about 6 s in all).
WARM_UP_BACKOFF = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2)
SWEEP_SECONDS = 30.0
# What a browser on another origin may send and read: everything the contract offers (a resume's
# Last-Event-ID; the turn id, request id and Retry-After headers).
CORS_HEADERS = [
    "authorization",
    "content-type",
    "apikey",
    "x-client-info",
    "x-request-id",
    "last-event-id",
    "traceparent",
    "tracestate",
]
CORS_EXPOSED = ["x-turn-id", "x-request-id", "retry-after"]


@dataclass
class Overrides:
    """Test seams: replace an adapter without touching the rest of the wiring."""

    providers: list[tuple[Provider, str]] | None = None
    span_exporter: object | None = None  # an OpenTelemetry SpanExporter: spans on, exported there


def chat_policy(settings: Settings) -> ChatPolicy:
    """The few settings the chat use case decides with (it never reads `Settings` itself)."""
    return ChatPolicy(
        system_prompt=settings.system_prompt,
        max_tokens=settings.llm_max_tokens,
        temperature=settings.llm_temperature,
        availability_budget=settings.llm_availability_budget,
        idle_timeout=settings.llm_idle_timeout,
        total_timeout=settings.llm_total_timeout,
        history_token_budget=settings.history_token_budget,
        history_max_messages=settings.history_max_messages,
        reservation_ttl_seconds=settings.reservation_ttl_seconds,
        caps=Caps(
            daily_usd=settings.daily_budget_usd,
            monthly_usd=settings.monthly_budget_usd,
            rate_per_minute=settings.rate_limit_per_minute,
            max_streams=settings.max_concurrent_streams,
        ),
        finish_retries=settings.finish_retries,
        finish_backoff_seconds=settings.finish_backoff_seconds,
        grace_seconds=settings.disconnect_grace_seconds,
        checkpoint_seconds=settings.checkpoint_seconds,
        retention_seconds=settings.resume_retention_seconds,
        stop_poll_seconds=settings.stop_poll_seconds,
    )


def _database_http_client(settings: Settings) -> httpx.AsyncClient:
    """One pooled client for Auth (JWKS, GET /user) and the alert delivery's Data API reads,
    shared by every request; it carries no user auth.

    httpx's API over aiohttp's connection handling, as for the providers: with two RPCs per
    chat turn, the benchmark measured about 2 ms less CPU per turn than httpx's own transport.
    """
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=100, keepalive_expiry=4.0)
    return httpx.AsyncClient(
        timeout=httpx.Timeout(settings.db_timeout_seconds, connect=settings.db_timeout_seconds),
        limits=limits,
        transport=HonestAiohttpTransport(limits=limits),
        event_hooks={"request": [tracing.inject_headers]},  # the caller's traceparent, passed on
    )


def _data_api_session(settings: Settings) -> aiohttp.ClientSession:
    """The chat store's pool: aiohttp itself, no httpx on top (`store/data_api.py` says why).

    The same bounds as the httpx pool; every RPC is also bounded as a whole by the store.
    """
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=200, keepalive_timeout=4.0),
        timeout=aiohttp.ClientTimeout(
            total=None,
            sock_connect=settings.db_timeout_seconds,
            sock_read=settings.db_timeout_seconds,
        ),
    )


async def _sweep_forever(store: SupabaseChatStore, interval: float) -> None:
    """Dead workers' expired turns become abandoned usage rows, even if their users never return
    (each user's own next turn sweeps theirs too, inside `chat_begin`)."""
    while True:
        await asyncio.sleep(interval)
        try:
            if swept := await store.sweep():
                logger.warning("%d abandoned turn(s) recorded as estimated usage", swept)
        except AppError as exc:
            logger.warning("sweeping abandoned turns failed: %s", exc.detail or exc.code)


@contextlib.asynccontextmanager
async def _services(settings: Settings, overrides: Overrides) -> AsyncIterator[Services]:
    if not settings.supabase_url:
        raise RuntimeError("SUPABASE_URL is required (`make run` sets it for the local stack)")
    async with contextlib.AsyncExitStack() as stack:
        endpoint, exporter = settings.otel_exporter_otlp_endpoint, overrides.span_exporter
        if tracing.configure(endpoint, settings.otel_service_name, exporter=exporter):
            stack.callback(tracing.shutdown)
        http = await stack.enter_async_context(_database_http_client(settings))
        rpc = await stack.enter_async_context(_data_api_session(settings))
        service_key = secret_key(settings)
        store = SupabaseChatStore(
            DataApi(settings.supabase_url, publishable_key(settings), rpc),
            Attestor(key_bytes(settings.billing_attestation_key.get_secret_value())),
            service=DataApi(settings.supabase_url, service_key, rpc) if service_key else None,
            timeout=settings.db_timeout_seconds,
            budgets=alert_budgets(settings),
        )
        verifier = TokenVerifier(settings, http)
        if overrides.providers is not None:
            providers = overrides.providers
        else:
            built = build_providers(settings)
            stack.push_async_callback(built.aclose)
            adapters = [adapter for adapter in built if adapter is not None]
            configured = configured_providers(settings)
            providers = [(a, p.model) for a, p in zip(adapters, configured, strict=True)]
        outbox = Outbox(settings.outbox_dir)
        metrics = ChatMetrics(outbox_depth=outbox.depth)
        lag_monitor = LagMonitor()
        lag_monitor.start()
        stack.push_async_callback(lag_monitor.stop)
        policy = chat_policy(settings)
        chat = ChatService(
            head_grace=lag_monitor.lag_seconds,
            policy=policy,
            store=store,
            providers=providers,
            pricer=Pricer(settings),
            spool=outbox,
        )
        feeds = FeedRegistry(policy, store)
        resumer = Resumer(feeds, store, policy)
        drain = Drain(
            feeds,
            grace_seconds=settings.shutdown_grace_seconds,
            flush=lambda: outbox.replay(store.finish_as_service),
        )
        services = Services(
            feeds=feeds,
            resumer=resumer,
            drain=drain,
            admission=Admission(
                lag=lag_monitor.lag_seconds,
                max_lag_seconds=settings.admission_max_lag_ms / 1000,
                max_streams=settings.max_streams_per_worker,
            ),
            lag_monitor=lag_monitor,
            followers=Followers(
                per_turn=settings.max_followers_per_turn,
                per_user=settings.max_followers_per_user,
            ),
            pending=PendingRequests(
                per_worker=settings.max_pending_requests_per_worker,
                per_client=settings.max_pending_requests_per_client,
            ),
            settings=settings,
            verifier=verifier,
            chat=chat,
            outbox=outbox,
            store=store,
            metrics=metrics,
            provider_problems=lambda: provider_problems(settings),
        )
        background = [
            asyncio.ensure_future(_warm_up(verifier.warm)),
            asyncio.ensure_future(
                replay_forever(outbox, store.finish_as_service, settings.outbox_replay_seconds)
            ),
        ]
        if service_key:
            background.append(asyncio.ensure_future(_sweep_forever(store, SWEEP_SECONDS)))
        if service_key and settings.alert_webhook_url:
            webhook = await stack.enter_async_context(httpx.AsyncClient(timeout=5.0))
            delivery = AlertDelivery(
                data_api_client(settings.supabase_url, service_key, http),
                webhook,
                settings.alert_webhook_url,
                settings.alert_webhook_secret.get_secret_value().encode(),
                settings.alert_retry_seconds,
            )
            interval = settings.outbox_replay_seconds
            background.append(asyncio.ensure_future(deliver_forever(delivery, interval)))
        drain.install()
        stop_refetching = refetch_on_sighup(verifier.refetch)
        try:
            yield services
        finally:
            stop_refetching()
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)


async def _warm_up(warm: Callable[[], Awaitable[bool]]) -> None:
    """Warm the token verifier now; while Auth does not answer, try again with backoff.

    Against a real project the first attempt succeeds. In the local stack Auth is served by this
    same server, which starts listening only after the lifespan: a later attempt succeeds. If all
    fail, the first request fetches the keys itself.
    """
    for pause in WARM_UP_BACKOFF:
        if await warm():
            return
        await asyncio.sleep(pause)
    if not await warm():
        logger.warning("token verifier warm-up gave up: the first request will fetch the keys")


def alert_budgets(settings: Settings) -> dict[str, str]:
    """The app-wide alert thresholds `chat_finish` decides with (a user's `user_limits` wins)."""
    return {
        "soft_daily_usd": str(settings.soft_daily_budget_usd),
        "soft_monthly_usd": str(settings.soft_monthly_budget_usd),
        "daily_usd": str(settings.daily_budget_usd),
        "monthly_usd": str(settings.monthly_budget_usd),
    }


def provider_problems(settings: Settings) -> list[str]:
    """Configuration a provider needs before a request can succeed (readiness, not a call)."""
    return [f"{p.key_setting} is not set" for p in configured_providers(settings) if p.key_missing]


def create_app(settings: Settings | None = None, *, overrides: Overrides | None = None) -> FastAPI:
    settings = settings or get_settings()
    overrides = overrides or Overrides()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with _services(settings, overrides) as services:
            app.state.services = services
            yield

    app = EdgeApp(
        title="chat-stream",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    install_error_handlers(app)
    cors: dict[str, Any] = {
        "allow_origins": settings.cors_origins,
        "allow_methods": ["POST", "OPTIONS", "GET"],
        "allow_headers": CORS_HEADERS,
        "expose_headers": CORS_EXPOSED,
        "max_age": 86400,
    }
    app.add_middleware(CORSMiddleware, **cors)
    app.add_middleware(RequestIdMiddleware)
    app.add_middleware(TraceContextMiddleware)
    # A turn's POST skips the stack above (api/edge.py); its preflight and other methods do not.
    app.edge_routes = dict.fromkeys(
        chat_stream.PATHS, edge_route(chat_stream.chat_stream, cors=cors)
    )
    app.include_router(chat_stream.router)
    app.include_router(resume.router)
    app.include_router(stop.router)
    app.include_router(health.router)
    return app


def create_app_from_env() -> FastAPI:
    """uvicorn's factory for `chat-stream serve` (each worker builds its own app)."""
    settings = get_settings()
    configure_logging(settings.log_level, json_lines=settings.log_json)
    return create_app(settings)
