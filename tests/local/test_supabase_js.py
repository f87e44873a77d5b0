"""The 2026 API keys through the official supabase-js client (tests/js, `npm ci` from the
Makefile), against the session stack over real HTTP. Without node or the installed folder the
test skips, except in CI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from app.local.keys import DEFAULT_PUBLISHABLE_KEY, DEFAULT_SECRET_KEY
from app.local.server import ServerThread

JS = Path(__file__).resolve().parents[1] / "js"


def _run(url: str) -> dict[str, Any]:
    node = shutil.which("node")
    if node is None or not (JS / "node_modules" / "@supabase" / "supabase-js").exists():
        if os.environ.get("CI"):
            pytest.fail("supabase-js is not installed: `npm ci --prefix tests/js`")
        pytest.skip("supabase-js is not installed: `npm ci --prefix tests/js`")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True)
    # supabase-js needs a WebSocket class at import; Node 20 has one behind a flag (22: built in).
    flags = (
        ["--experimental-websocket"] if int(version.stdout.lstrip("v").split(".")[0]) < 22 else []
    )
    out = subprocess.run(
        [node, *flags, str(JS / "keys_2026.mjs"), url, DEFAULT_PUBLISHABLE_KEY, DEFAULT_SECRET_KEY],
        cwd=JS,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_supabase_js_with_the_publishable_and_secret_keys_only(stack_server: ServerThread) -> None:
    out = _run(stack_server.url)
    first, second = out["first"], out["second"]

    # Publishable key: sign up, write and read own rows under RLS.
    assert first["own"] == [{"user_id": first["id"], "title": first["title"]}]
    assert second["own"] == [{"user_id": second["id"], "title": second["title"]}]
    # Secret key in apikey alone: every user's rows, and the Auth admin API.
    assert {(r["user_id"], r["title"]) for r in out["secret_rows"]} == {
        (first["id"], first["title"]),
        (second["id"], second["title"]),
    }
    assert {first["id"], second["id"]} <= set(out["secret_user_ids"])
    # The publishable key cannot.
    assert out["publishable_admin"] == {"status": 403, "code": "not_admin"}
    assert out["publishable_rows"] == {"code": "42501"}
