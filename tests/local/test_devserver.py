"""`chat-stream dev` (`make run`) as a real subprocess: its banner leads with the 2026 keys."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from app.config import Settings
from app.config.keys import publishable_key, secret_key
from app.local.context import StackContext
from app.local.devserver import service_settings
from app.local.keys import DEFAULT_PUBLISHABLE_KEY, DEFAULT_SECRET_KEY, LocalKeys
from app.local.postgres import free_port

CLI = str(Path(sys.executable).with_name("chat-stream"))


def test_dev_service_runs_with_only_the_2026_key_names(tmp_path: Path) -> None:
    """`make run`'s service is configured as a 2026 project is: no legacy anon/service_role keys."""
    ctx = StackContext(keys=LocalKeys.generate(), api_url="http://127.0.0.1:54321", db_port=5432)
    stack = SimpleNamespace(ctx=ctx, stack_dir=tmp_path)

    settings = service_settings(Settings(_env_file=None), stack)  # type: ignore[arg-type]

    assert settings.supabase_anon_key.get_secret_value() == ""
    assert settings.supabase_service_role_key.get_secret_value() == ""
    assert publishable_key(settings).value.get_secret_value() == ctx.keys.publishable_key
    assert secret_key(settings).value.get_secret_value() == ctx.keys.secret_key
    assert settings.auth_mode == "rotation"


@pytest.mark.slow
def test_dev_banner_prints_the_publishable_and_secret_keys_and_the_signing_key(
    tmp_path: Path,
) -> None:
    names = {name.upper() for name in Settings.model_fields}
    env = {k: v for k, v in os.environ.items() if k not in names} | {
        "API_PORT": str(free_port()),
        "DB_PORT": str(free_port()),
        "LOCAL_STACK_DIR": str(tmp_path / "stack"),
        "LOG_LEVEL": "WARNING",
    }
    log = tmp_path / "dev.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [CLI, "dev"],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 240
        while "  -d '" not in log.read_text():  # the demo curl's last line
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.5)
        curl = log.read_text().split("Paste this to stream an answer:\n", 1)[1].strip()
        streamed = subprocess.run(
            ["bash", "-c", curl],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
    banner = log.read_text()

    assert f"publishable key: {DEFAULT_PUBLISHABLE_KEY}" in banner
    assert f"secret key:      {DEFAULT_SECRET_KEY}" in banner
    assert "(ES256)" in banner and "deprecated" in banner
    assert f"-H 'apikey: {DEFAULT_PUBLISHABLE_KEY}'" in banner  # the curl uses the 2026 key
    # ... and, pasted as printed, streams an answer from the service configured with them.
    assert streamed.returncode == 0, streamed.stderr
    assert '"type":"token"' in streamed.stdout and '"type":"done"' in streamed.stdout
