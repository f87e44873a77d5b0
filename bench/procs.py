"""The benchmark's processes: start each in its own session, wait until it answers, measure its
CPU and memory (the whole process tree), and stop every one of them on exit or Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Usage:
    """CPU seconds (user + system) and resident memory of a process tree at one instant."""

    cpu_s: float
    rss_bytes: int


class Proc:
    """One started process (and its children): readiness, measurements, and a clean stop."""

    def __init__(self, name: str, popen: subprocess.Popen[bytes], log_path: Path) -> None:
        self.name = name
        self.popen = popen
        self.log_path = log_path
        self._ps = psutil.Process(popen.pid)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def tree(self) -> list[psutil.Process]:
        try:
            return [self._ps, *self._ps.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def usage(self) -> Usage:
        """CPU of the live tree plus what its reaped children used; RSS of the live tree."""
        cpu, rss = 0.0, 0
        for proc in self.tree():
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                times = proc.cpu_times()
                cpu += times.user + times.system
                if proc.pid == self.pid:
                    cpu += times.children_user + times.children_system
                rss += proc.memory_info().rss
        return Usage(cpu, rss)

    def wait_http(self, url: str, timeout: float) -> None:
        """Poll `url` until it answers 200, the process dies, or `timeout` passes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.popen.returncode}: {self.tail()}"
                )
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not answer {url} within {timeout}s: {self.tail()}")

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def kill(self, timeout: float = 10.0) -> None:
        """SIGKILL to the whole group at once, as a crash or the OOM killer would: nothing in it
        gets to finish a turn, write a usage row or spool to its outbox."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGINT to the group (uvicorn and `chat-stream dev` shut down cleanly), then SIGKILL."""
        if self.popen.poll() is not None:
            return
        for sig, wait in ((signal.SIGINT, timeout), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)
            try:
                self.popen.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue


class Procs:
    """Everything started for one run; `stop_all()` in reverse order, also from a signal."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.started: list[Proc] = []

    def start(
        self, name: str, argv: Sequence[str], env: Mapping[str, str], *, cwd: Path = ROOT
    ) -> Proc:
        """Start `argv` in its own session (`python -m app...` imports `app` from `cwd`)."""
        log_path = self.run_dir / f"{name}.log"
        log = log_path.open("ab")
        try:
            popen = subprocess.Popen(
                list(argv),
                cwd=cwd,
                env=dict(env),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # our Ctrl-C does not reach it; we stop it ourselves
            )
        finally:
            log.close()
        proc = Proc(name, popen, log_path)
        self.started.append(proc)
        return proc

    def stop(self, proc: Proc) -> None:
        proc.stop()
        if proc in self.started:
            self.started.remove(proc)

    def stop_all(self) -> None:
        while self.started:
            self.started.pop().stop()


@contextlib.contextmanager
def stopped_on_signals(procs: Procs) -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt and stop every process however the run ends."""
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        procs.stop_all()


def _raise_interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def python() -> str:
    return sys.executable


def clean_env(**extra: str) -> dict[str, str]:
    """The parent's environment without anything that configures the service or the stand-in."""
    prefixes = (
        "SUPABASE",
        "LLM_",
        "ANTHROPIC",
        "OPENAI",
        "DAILY_",
        "MONTHLY_",
        "RATE_LIMIT",
        "MAX_CONCURRENT",
        "LOCAL_STACK",
        "API_PORT",
        "DB_PORT",
        "AUTH_MODE",
        "JWT_",
        "OUTBOX",
        "RESERVATION",
        "LOG_",
        "WORKERS",
        "PORT",
        "HOST",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    return env | extra
