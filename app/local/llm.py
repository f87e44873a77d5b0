"""Anthropic / OpenAI streaming stand-in — placeholder until it lands (issue 4)."""

from __future__ import annotations

from starlette.applications import Starlette


def create_app() -> Starlette:
    return Starlette()
