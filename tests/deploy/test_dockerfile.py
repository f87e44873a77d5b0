"""The Dockerfile's own commands, run without a container engine (none runs on these machines).

The test reads the Dockerfile, copies what it COPYs into a scratch root, runs its `RUN pip …` in a
fresh virtualenv, starts its CMD with its ENV against the local stack, runs its HEALTHCHECK and
stops the server with its STOPSIGNAL. The RUN that creates the non-root user is checked, not run
(it needs root and would change this machine).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import venv
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from app.local.postgres import free_port
from app.local.server import ServerThread
from app.local.stack import LocalStack
from tests.deploy.serving import stack_env
from tests.support.database import ROOT, fresh_database

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@dataclass
class Dockerfile:
    base: str = ""
    workdir: str = "/"
    env: dict[str, str] = field(default_factory=dict)
    copies: list[tuple[list[str], str]] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    user: str = "root"
    healthcheck: list[str] = field(default_factory=list)
    stopsignal: str = "SIGTERM"
    cmd: list[str] = field(default_factory=list)


def parse(text: str) -> Dockerfile:
    """The instructions this Dockerfile uses (continuations joined, comments dropped)."""
    joined = text.replace("\\\n", " ")
    out = Dockerfile()
    for raw in joined.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        rest = rest.strip()
        match instruction.upper():
            case "FROM":
                out.base = rest
            case "WORKDIR":
                out.workdir = rest
            case "ENV":
                out.env |= dict(part.split("=", 1) for part in shlex.split(rest))
            case "COPY":
                *sources, dest = shlex.split(rest)
                out.copies.append((sources, dest))
            case "RUN":
                out.runs.append(rest)
            case "USER":
                out.user = rest
            case "HEALTHCHECK":
                out.healthcheck = json.loads(rest[rest.index("CMD") + 3 :])
            case "STOPSIGNAL":
                out.stopsignal = rest
            case "CMD":
                out.cmd = json.loads(rest)
    return out


DOCKERFILE = parse((ROOT / "Dockerfile").read_text())


def test_dockerfile_follows_the_container_recipe() -> None:
    assert DOCKERFILE.base == "python:3.11-slim"
    assert DOCKERFILE.cmd == ["chat-stream", "serve"]  # exec form: the server is PID 1
    assert DOCKERFILE.user not in ("root", "0")
    assert any(f"useradd --create-home --uid 10001 {DOCKERFILE.user}" in r for r in DOCKERFILE.runs)
    assert DOCKERFILE.stopsignal == "SIGTERM"
    assert any("/readyz" in part for part in DOCKERFILE.healthcheck)
    assert DOCKERFILE.env["HOST"] == "0.0.0.0" and DOCKERFILE.env["OUTBOX_DIR"] == "/data/outbox"
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".env", ".venv", ".local", ".git"} <= set(ignored)


def test_dockerfile_install_and_start_commands_work_in_a_fresh_virtualenv(
    local_stack: LocalStack, stack_server: ServerThread, tmp_path: Path
) -> None:
    root = tmp_path / "root"  # the image's file system: /code → root/code

    def inside(path: str) -> str:
        return str(root / path.lstrip("/"))

    def rewrite(text: str) -> str:
        for container in ("/code", "/data"):
            text = text.replace(container, inside(container))
        return text

    for sources, dest in DOCKERFILE.copies:
        for source in sources:
            src = ROOT / source
            target = Path(inside(dest)) / src.name if dest.endswith("/") else Path(inside(dest))
            target.parent.mkdir(parents=True, exist_ok=True)
            if src.is_dir():
                shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(src, target)

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    bin_dir = env_dir / "bin"
    # Dockerfile ENV for pip (no cache) is left out: the cache only spares this machine downloads.
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "VIRTUAL_ENV"))}
    base_env["PATH"] = f"{bin_dir}{os.pathsep}{base_env['PATH']}"
    workdir = inside(DOCKERFILE.workdir)
    began = time.monotonic()
    pip_runs = [r for r in DOCKERFILE.runs if r.startswith("pip ")]
    assert pip_runs, "the Dockerfile installs nothing with pip"
    for run in pip_runs:
        argv = shlex.split(rewrite(run))
        argv.remove("--no-cache-dir")
        subprocess.run(
            argv, cwd=workdir, env=base_env | {"PIP_NO_COMPILE": "1"}, check=True, timeout=480
        )
    installed = time.monotonic() - began
    assert (bin_dir / "chat-stream").exists()
    outside = subprocess.run(
        [bin_dir / "python", "-c", "import app, sys; print(app.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    assert outside.stdout.startswith(str(env_dir))  # the venv's own copy, not this checkout

    # The image's `chat-stream migrate`, from its working dir, against an empty database.
    with fresh_database(local_stack) as db:
        migrated = subprocess.run(
            ["chat-stream", "migrate", "--db-url", db.dsn],
            cwd=workdir,
            env=base_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert migrated.returncode == 0, migrated.stderr
    count = len(list((root / "code" / "supabase" / "migrations").glob("*.sql")))
    assert migrated.stdout.strip().endswith(f"{count} migration(s) applied")

    port = free_port()
    container_env = {k: rewrite(v) for k, v in DOCKERFILE.env.items() if not k.startswith("PIP_")}
    env = base_env | stack_env(local_stack, tmp_path) | container_env
    env |= {"PORT": str(port), "HOST": "127.0.0.1", "PATH": base_env["PATH"], "LOG_LEVEL": "INFO"}
    Path(env["OUTBOX_DIR"]).mkdir(parents=True, exist_ok=True)
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        DOCKERFILE.cmd, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 60
        ready = None
        while time.monotonic() < deadline and server.poll() is None:
            probe = subprocess.run(DOCKERFILE.healthcheck, env=env, capture_output=True, timeout=10)
            if probe.returncode == 0:
                ready = probe
                break
            time.sleep(0.5)
        assert ready is not None, (tmp_path / "serve.log").read_text()
        assert httpx.get(f"http://127.0.0.1:{port}/readyz").json()["status"] == "ready"
        stopped_at = time.monotonic()
        server.send_signal(getattr(signal, DOCKERFILE.stopsignal))
        # uvicorn shuts down gracefully, then re-raises the signal: exit status -SIGTERM.
        assert server.wait(timeout=15) in (0, -signal.SIGTERM)
        assert time.monotonic() - stopped_at < 15
        assert "Application shutdown complete" in (tmp_path / "serve.log").read_text()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        log.close()
    sys.stderr.write(f"pip install of the image's commands: {installed:.1f}s\n")
