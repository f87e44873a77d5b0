"""Supabase Auth (GoTrue) stand-in — placeholder until the stand-in lands (issue 3)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app.local.stack import StackContext


def create_app(ctx: StackContext) -> Starlette:
    async def jwks(_: Request) -> JSONResponse:
        return JSONResponse(ctx.keys.jwks(), headers={"Cache-Control": "public, max-age=600"})

    return Starlette(routes=[Route("/.well-known/jwks.json", jwks)])
