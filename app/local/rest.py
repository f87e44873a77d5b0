"""PostgREST stand-in — placeholder until the stand-in lands (issue 3)."""

from __future__ import annotations

from starlette.applications import Starlette

from app.local.stack import StackContext


def create_app(ctx: StackContext) -> Starlette:  # noqa: ARG001
    return Starlette()
