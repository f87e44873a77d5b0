"""Liveness, readiness and metrics: cheap enough to poll every second."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from app.api.deps import Services
from app.errors import AppError, KeyRefused
from app.ops.metrics import CONTENT_TYPE_LATEST

router = APIRouter()
READY_CACHE_SECONDS = 1.0


@router.api_route("/healthz", methods=["GET", "HEAD"])  # monitors often probe with HEAD
async def healthz() -> JSONResponse:
    """The process is alive and its event loop answers."""
    return JSONResponse({"status": "ok"})


@router.api_route("/readyz", methods=["GET", "HEAD"])
async def readyz(request: Request) -> JSONResponse:
    """The Data API and the database behind it answer, and the providers are configured.

    Each failing part is named: `api_key` (the Data API refused SUPABASE_ANON_KEY), `database`
    (the Data API or the database behind it failed: the error's code), `providers`.

    One real round trip at most per second, whatever the polling rate: results are cached.
    """
    services: Services = request.app.state.services
    if services.drain.draining:  # at once, uncached: the load balancer must move away now
        return JSONResponse(
            {"status": "draining", "checks": {"server": "shutting_down"}}, status_code=503
        )
    loop = asyncio.get_running_loop()
    cached = services.readiness
    if cached is not None and loop.time() - cached[0] < READY_CACHE_SECONDS:
        return cached[1]
    checks: dict[str, str] = {}
    try:
        await services.store.ping()
        checks["database"] = "ok"
    except KeyRefused:  # the database may be fine: the part that fails is our key
        checks["api_key"] = "key refused: check SUPABASE_ANON_KEY"
    except AppError as exc:
        checks["database"] = exc.code
    problems = services.provider_problems()
    checks["providers"] = "ok" if not problems else "; ".join(problems)
    ready = all(v == "ok" for v in checks.values())
    response = JSONResponse(
        {"status": "ready" if ready else "unavailable", "checks": checks},
        status_code=200 if ready else 503,
    )
    services.readiness = (loop.time(), response)
    return response


@router.api_route("/metrics", methods=["GET", "HEAD"])
async def metrics(request: Request) -> Response:
    services: Services = request.app.state.services
    return Response(services.metrics.render(), media_type=CONTENT_TYPE_LATEST)
