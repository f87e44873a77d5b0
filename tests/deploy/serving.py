"""`chat-stream serve` as a real subprocess against the session's local stack."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from app.config import Settings
from app.local.postgres import free_port
from app.local.stack import LocalStack

CLI = str(Path(sys.executable).with_name("chat-stream"))


@dataclass
class Served:
    url: str
    process: subprocess.Popen[str]
    log: Path

    @property
    def endpoint(self) -> str:
        return f"{self.url}/functions/v1/chat-stream"


def stack_env(local_stack: LocalStack, tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment `serve` (or `check`) needs to use the local stack as its project."""
    ctx, keys = local_stack.ctx, local_stack.keys
    names = {name.upper() for name in Settings.model_fields}
    env = {k: v for k, v in os.environ.items() if k not in names}
    return env | {
        "SUPABASE_URL": ctx.api_url,
        "SUPABASE_ANON_KEY": keys.anon_key,
        "SUPABASE_SERVICE_ROLE_KEY": keys.service_role_key,
        "BILLING_ATTESTATION_KEY": keys.attestation_key.decode(),
        "JWT_ISSUER": ctx.jwt_issuer,
        "ANTHROPIC_BASE_URL": f"{ctx.api_url}/llm",
        "ANTHROPIC_API_KEY": "test-key",
        "LLM_MODEL": "claude-sonnet-4-5",
        "OUTBOX_DIR": str(tmp_path / "outbox"),
        "LOG_LEVEL": "WARNING",
        **extra,
    }


@contextmanager
def serve(local_stack: LocalStack, tmp_path: Path, *args: str, **extra: str) -> Iterator[Served]:
    """Start `chat-stream serve <args>` on a free port; yield once /healthz answers; stop it."""
    port = free_port()
    log = tmp_path / f"serve-{port}.log"
    env = stack_env(local_stack, tmp_path, **extra)
    with log.open("w") as out:
        process = subprocess.Popen(
            [CLI, "serve", "--port", str(port), *args],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
    served = Served(f"http://127.0.0.1:{port}", process, log)
    try:
        _wait_healthy(served)
        yield served
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


def _wait_healthy(served: Served, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if served.process.poll() is not None:
            raise RuntimeError(f"serve exited early:\n{served.log.read_text()}")
        try:
            if httpx.get(f"{served.url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"serve not healthy in {timeout}s:\n{served.log.read_text()}")
