"""`chat-stream dev` (`make run`) as a real subprocess: its banner leads with the 2026 keys."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.config import Settings
from app.local.keys import DEFAULT_PUBLISHABLE_KEY, DEFAULT_SECRET_KEY
from app.local.postgres import free_port

CLI = str(Path(sys.executable).with_name("chat-stream"))


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
            [CLI, "dev", "--quiet"],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 240
        while "Ctrl-C stops everything" not in log.read_text():
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.5)
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
