"""`chat-stream serve` runs uvicorn on uvloop with our httptools protocol (the relay's speed
depends on both: with "auto", a missing uvloop would fall back to asyncio's loop unseen)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest
import uvicorn
import uvloop
from uvicorn.config import Config
from uvicorn.importer import import_from_string
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.api.protocol import PROTOCOL_PATH, GuardedHttpToolsProtocol
from app.cli import _cmd_serve
from tests.support.database import make_settings


def test_serve_runs_uvicorn_on_uvloop_with_the_guarded_httptools_protocol(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: seen.update(app=app, **kwargs))
    settings = make_settings(
        supabase_url="http://127.0.0.1:9",
        supabase_anon_key="sb_publishable_ACJWlzQHlZjBrEguHvfOxg_3BJgxAaH",
        supabase_service_role_key="sb_secret_N7UND0UgjKTVK-Uodkm0Hg_xSvEMPvz",
        billing_attestation_key="k" * 43,
        anthropic_api_key="test",
        outbox_dir=tmp_path,
    )
    args = argparse.Namespace(host=None, port=None, workers=1)

    assert _cmd_serve(args, settings) == 0

    assert seen["loop"] == "uvloop" and seen["http"] == PROTOCOL_PATH
    assert import_from_string(seen["http"]) is GuardedHttpToolsProtocol
    assert issubclass(GuardedHttpToolsProtocol, HttpToolsProtocol)
    factory = Config(seen["app"], loop=seen["loop"]).get_loop_factory()
    assert factory is not None
    loop = factory()
    try:
        assert isinstance(loop, uvloop.Loop)
    finally:
        loop.close()
