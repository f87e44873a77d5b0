"""`python -m app.local.rest.serve`: the REST stand-in alone, on SQL it loads, with a profile."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from app.local.context import StackContext
from app.local.postgres import free_port
from app.local.rest.serve import build_rest_app, expose_new_objects, load_sql, main
from app.local.server import ServerThread
from app.local.stack import LocalStack
from tests.local.rest_support import StatusLog
from tests.support.database import ROOT, fresh_database

PROFILE = Path(__file__).resolve().parents[3] / "supabase" / "postgrest-js.toml"


def test_serve_refuses_a_missing_sql_file_with_exit_code_2(tmp_path: Path) -> None:
    assert main(["--config", str(PROFILE), "--sql", str(tmp_path / "nope.sql")]) == 2


@pytest.mark.anyio
async def test_serve_exposes_new_public_tables_to_a_keyless_anon_request(
    local_stack: LocalStack, http: tuple[httpx.AsyncClient, StatusLog], tmp_path: Path
) -> None:
    """The suite's SQL grants nothing on `public`: the profile's `auto_expose_new_tables`
    (the CLI's default grants) does, and `/rest/v1` asks for no apikey, as the CLI's Kong."""
    script = tmp_path / "schema.sql"
    script.write_text(
        "create table public.things (id int primary key); insert into public.things values (1);"
    )
    with fresh_database(local_stack) as db:
        expose_new_objects(db.superuser_dsn)
        load_sql(db.superuser_dsn, [script])
        port = free_port()
        ctx = StackContext(
            keys=local_stack.keys,
            api_url=f"http://127.0.0.1:{port}",
            db_port=local_stack.db_port,
            db_name=db.name,
        )
        with ServerThread(build_rest_app(ctx, PROFILE), port) as server:
            res = await http[0].get(f"{server.url}/rest/v1/things")
    assert (res.status_code, res.json()) == (200, [{"id": 1}])


def test_serve_stopped_by_sigterm_stops_its_postgres_and_removes_its_folder(
    tmp_path: Path,
) -> None:
    """uvicorn re-raises the SIGTERM it shut down on; without a handler of ours that killed the
    process before `finally`, leaving the embedded PostgreSQL running."""
    port = free_port()
    env = os.environ | {"TMPDIR": str(tmp_path)}
    args = [sys.executable, "-m", "app.local.rest.serve", "--config", str(PROFILE)]
    proc = subprocess.Popen([*args, "--port", str(port)], env=env, cwd=ROOT)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/rest/v1/", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.5)
        else:
            pytest.fail("the serve command did not answer")
        assert list(tmp_path.glob("rest-serve-*"))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) != 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not list(tmp_path.glob("rest-serve-*"))
