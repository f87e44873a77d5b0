"""Headless Chromium (the machine's own, never a downloaded one), driven over the DevTools protocol.

`Browser.open(url)` starts it on that page with a fresh profile; `evaluate(js)` runs an
expression in the page, awaits it when it is a promise and returns its value as JSON gives it.
"""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from websockets.sync.client import ClientConnection, connect

# Headless, and quiet on this machine's closed network (no background or update requests).
HEADLESS_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)  # fmt: skip
FLAGS = (*HEADLESS_FLAGS, "--remote-debugging-port=0")


def chromium_path() -> str:
    """The installed Chromium; a test that needs it fails (never skips) without it."""
    found = next(
        (
            shutil.which(n)
            for n in ("chromium", "chromium-browser", "google-chrome")
            if shutil.which(n)
        ),
        None,
    )
    assert found, "no Chromium on this machine: apt-get install -y chromium"
    return found


class Browser:
    def __init__(self, process: subprocess.Popen[bytes], page: ClientConnection) -> None:
        self._process, self._page = process, page
        self._ids = itertools.count(1)

    @classmethod
    def open(cls, url: str, profile: Path, *, timeout: float = 30.0) -> Browser:
        profile.mkdir(parents=True, exist_ok=True)
        process = subprocess.Popen(
            [chromium_path(), *FLAGS, f"--user-data-dir={profile}", url],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            port = _devtools_port(profile, process, timeout)
            page = _page_socket(port, timeout)
        except BaseException:
            process.kill()
            process.wait()
            raise
        return cls(process, page)

    def evaluate(self, expression: str, *, timeout: float = 60.0) -> Any:
        call_id = next(self._ids)
        params = {"expression": expression, "awaitPromise": True, "returnByValue": True}
        self._page.send(json.dumps({"id": call_id, "method": "Runtime.evaluate", "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(self._page.recv(timeout=max(0.1, deadline - time.monotonic())))
            if message.get("id") != call_id:
                continue  # an event the page sent meanwhile
            result = message["result"]
            if "exceptionDetails" in result:
                raise AssertionError(f"the page threw: {result['exceptionDetails']}")
            return result["result"].get("value")

    def wait_for(self, expression: str, *, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.evaluate(expression):
            assert time.monotonic() < deadline, f"never true in the page: {expression}"
            time.sleep(0.05)

    def close(self) -> None:
        self._page.close()
        self._process.terminate()
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def __enter__(self) -> Browser:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _devtools_port(profile: Path, process: subprocess.Popen[bytes], timeout: float) -> int:
    """Chromium writes the port it chose into the profile's `DevToolsActivePort`."""
    marker = profile / "DevToolsActivePort"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"Chromium exited with {process.returncode}"
        if marker.exists() and (first := marker.read_text().split("\n", 1)[0].strip()):
            return int(first)
        time.sleep(0.05)
    raise AssertionError("Chromium did not open its DevTools port")


def _page_socket(port: int, timeout: float) -> ClientConnection:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=5).json()
        pages = [t for t in targets if t.get("type") == "page" and t.get("webSocketDebuggerUrl")]
        if pages:
            return connect(pages[0]["webSocketDebuggerUrl"], max_size=None, open_timeout=timeout)
        time.sleep(0.05)
    raise AssertionError("Chromium opened no page")
