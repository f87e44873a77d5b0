"""A private PostgreSQL cluster for `make run`, the tests and the benchmarks.

Binaries come from `pg_install` (the machine's, else the `pgserver` wheel). PostgreSQL refuses to
run as root, so a root process runs the server as an unprivileged system user.
"""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from app.local.pg_install import PgInstall, PostgresError

logger = logging.getLogger(__name__)

SUPERUSER = "supabase_admin"
# The Supabase CLI's local default; the cluster listens on loopback only.
LOCAL_PASSWORD = "postgres"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _server_user() -> pwd.struct_passwd | None:
    """The account to run the server as: None when we are not root."""
    if os.geteuid() != 0:
        return None
    for name in (os.environ.get("CHAT_STREAM_PG_USER", ""), "postgres", "nobody"):
        if not name:
            continue
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise PostgresError("Running as root and no unprivileged user (postgres, nobody) exists.")


def _make_reachable(path: Path, user: pwd.struct_passwd) -> None:
    """Let `user` traverse every ancestor of `path` (adds o+x where missing, never o+r)."""
    for ancestor in reversed(path.resolve().parents):
        mode = ancestor.stat().st_mode
        if not mode & 0o001:
            logger.warning("adding o+x to %s so %s can reach the data dir", ancestor, user.pw_name)
            ancestor.chmod(mode | 0o001)


class EmbeddedPostgres:
    """One cluster in `data_dir`, listening on 127.0.0.1:`port` and a Unix socket."""

    def __init__(
        self,
        data_dir: Path,
        port: int,
        install: PgInstall,
        *,
        durable: bool = True,
        log_path: Path | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).absolute()
        self.port = port
        self.install = install
        self.durable = durable
        self.log_path = log_path or self.data_dir.parent / "postgres.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._user = _server_user()
        self.socket_dir = Path(tempfile.mkdtemp(prefix="csdb-"))
        self._chown(self.socket_dir)
        self.startup_seconds: float | None = None

    # --- connection strings -----------------------------------------------------------------
    def dsn(
        self, user: str = SUPERUSER, password: str = LOCAL_PASSWORD, dbname: str = "postgres"
    ) -> str:
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{dbname}"

    @property
    def superuser_dsn(self) -> str:
        return self.dsn()

    # --- lifecycle --------------------------------------------------------------------------
    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        return env

    @property
    def _uid(self) -> int | None:
        return self._user.pw_uid if self._user else None

    @property
    def _gid(self) -> int | None:
        return self._user.pw_gid if self._user else None

    @property
    def _groups(self) -> list[int] | None:
        return [] if self._user else None

    def _chown(self, path: Path) -> None:
        if self._user is not None:
            os.chown(path, self._user.pw_uid, self._user.pw_gid)

    def _grant_access(self) -> None:
        """The server's user must reach its data dir and its binaries: the wheel's live in the
        venv, which may sit in a private (0700) folder such as a `mktemp -d` clone."""
        if self._user is not None:
            _make_reachable(self.data_dir, self._user)
            _make_reachable(self.install.bin_dir / "postgres", self._user)

    def initialised(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def init(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._chown(self.data_dir)
        self.data_dir.chmod(0o700)
        self._grant_access()
        with tempfile.NamedTemporaryFile("w", delete=False, dir=self.socket_dir) as pw:
            pw.write(LOCAL_PASSWORD + "\n")
        self._chown(Path(pw.name))
        try:
            result = subprocess.run(
                [
                    str(self.install.bin_dir / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    SUPERUSER,
                    "--pwfile",
                    pw.name,
                    "--auth",
                    "scram-sha-256",
                    "-E",
                    "UTF8",
                    "--no-locale",
                    "--no-sync",
                ],
                capture_output=True,
                text=True,
                check=False,
                env=self._env(),
                user=self._uid,
                group=self._gid,
                extra_groups=self._groups,
            )
        finally:
            os.unlink(pw.name)
        if result.returncode != 0:
            raise PostgresError(f"initdb failed ({self.data_dir}):\n{result.stderr[-2000:]}")

    def start(self, timeout: float = 30.0) -> None:
        if self._proc is not None:
            return
        began = time.perf_counter()
        if not self.initialised():
            self.init()
        else:
            self._grant_access()
        self._check_version()
        self._stop_orphan()
        self.socket_dir.mkdir(exist_ok=True)
        self._chown(self.socket_dir)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child for its lifetime
        args = [
            str(self.install.bin_dir / "postgres"),
            "-D",
            str(self.data_dir),
            "-p",
            str(self.port),
            "-h",
            "127.0.0.1",
            "-k",
            str(self.socket_dir),
            "-c",
            "max_connections=200",
            "-c",
            "shared_buffers=128MB",
            "-c",
            "listen_addresses=127.0.0.1",
        ]
        if not self.durable:
            args += [
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ]
        self._proc = subprocess.Popen(
            args,
            stdout=log,
            stderr=log,
            start_new_session=True,
            env=self._env(),
            user=self._uid,
            group=self._gid,
            extra_groups=self._groups,
        )
        log.close()
        self._wait_ready(timeout)
        self.startup_seconds = time.perf_counter() - began
        logger.info(
            "PostgreSQL (%s, %s) ready on 127.0.0.1:%d in %.2fs",
            self.install.source,
            self.install.version,
            self.port,
            self.startup_seconds,
        )

    def _stop_orphan(self, timeout: float = 15.0) -> None:
        """Stop a server a killed earlier run left on this data dir, so start() can proceed."""
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split()[0])
            os.kill(pid, 0)
        except (OSError, ValueError, IndexError):
            return
        logger.warning("stopping PostgreSQL (pid %d) left running on %s", pid, self.data_dir)
        os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except OSError:
                return
            time.sleep(0.05)
        raise PostgresError(f"PostgreSQL pid {pid} on {self.data_dir} did not stop")

    def _check_version(self) -> None:
        data_major = (self.data_dir / "PG_VERSION").read_text().strip()
        bin_major = self.install.version.split()[-1].split(".")[0]
        if data_major != bin_major:
            raise PostgresError(
                f"{self.data_dir} holds a PostgreSQL {data_major} cluster but the binaries are "
                f"{bin_major} ({self.install.bin_dir}); remove the folder or set PG_BIN."
            )

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                self._proc = None
                raise PostgresError(f"postgres exited at start:\n{self._log_tail()}")
            try:
                with psycopg.connect(self.superuser_dsn, connect_timeout=2):
                    return
            except psycopg.OperationalError:
                time.sleep(0.05)
        self.stop()
        raise PostgresError(f"postgres not ready after {timeout}s:\n{self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return "(no log)"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def stop(self, timeout: float = 15.0) -> None:
        """Fast shutdown (SIGINT): roll back open transactions, then exit."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(self.socket_dir, ignore_errors=True)

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
