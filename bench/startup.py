"""Cold and warm start of the local stack: embedded PostgreSQL, bootstrap, migrations, `dev`.

Each run uses a fresh temporary folder, so "cold" really means an empty data directory. The numbers
are wall-clock seconds on this machine; they go into docs/benchmarks.md.

Example:
    .venv/bin/python -m bench.startup --runs 5 --json .local/bench_startup.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import httpx

from app.db.migrate import apply_migrations, default_migrations_dir
from app.local.cluster import prepare_local_cluster
from app.local.pg_install import PgInstall, machine_install, wheel_install
from app.local.postgres import EmbeddedPostgres, free_port

ROOT = Path(__file__).resolve().parents[1]
CLI = ROOT / ".venv" / "bin" / "chat-stream"
READY_TIMEOUT_S = 60.0
DEMO_PRINTED = b"Paste this"

Samples = dict[str, list[float]]


def _timed(fn: Callable[[], object]) -> float:
    began = time.perf_counter()
    fn()
    return time.perf_counter() - began


def bench_database(install: PgInstall, workdir: Path) -> dict[str, float]:
    """initdb, first start, bootstrap, migrations, stop, then a warm start of the same cluster."""
    data_dir = workdir / "pgdata"
    pg = EmbeddedPostgres(data_dir, free_port(), install, log_path=workdir / "postgres.log")
    out: dict[str, float] = {}
    try:
        out["initdb_s"] = _timed(pg.init)
        out["first_start_s"] = _timed(pg.start)
        out["cold_start_s"] = out["initdb_s"] + out["first_start_s"]

        out["bootstrap_s"] = _timed(lambda: prepare_local_cluster(pg.superuser_dsn))
        applied: list[object] = []
        out["migrations_s"] = _timed(
            lambda: applied.extend(apply_migrations(pg.dsn("postgres"), default_migrations_dir()))
        )
        if not applied:
            raise RuntimeError("no migration was applied on a fresh cluster")
        out["stop_s"] = _timed(pg.stop)
    finally:
        pg.stop()
    warm = EmbeddedPostgres(data_dir, free_port(), install, log_path=workdir / "postgres.log")
    try:
        out["warm_start_s"] = _timed(warm.start)
        out["warm_migrations_noop_s"] = _timed(
            lambda: apply_migrations(warm.dsn("postgres"), default_migrations_dir())
        )
    finally:
        warm.stop()
    return out


def _dev_env(stack_dir: Path, *, wheel: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env |= {
        "LOCAL_STACK_DIR": str(stack_dir),
        "API_PORT": str(free_port()),
        "DB_PORT": str(free_port()),
        "PG_USE_WHEEL": "true" if wheel else "false",
        "LOG_LEVEL": "WARNING",
    }
    return env


def _postmaster_pid(stack_dir: Path) -> int:
    return int((stack_dir / "pgdata" / "postmaster.pid").read_text().split()[0])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def bench_dev_once(stack_dir: Path, *, wheel: bool) -> dict[str, float]:
    """Start `dev` as `make run` does; time /health, `status --json`, the demo curl; Ctrl-C."""
    env = _dev_env(stack_dir, wheel=wheel)
    health = f"http://127.0.0.1:{env['API_PORT']}/health"
    log = stack_dir.parent / f"dev-{time.monotonic_ns()}.log"
    began = time.perf_counter()
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(CLI), "dev"], env=env, cwd=stack_dir.parent, stdout=out, stderr=out
        )
    try:
        _wait_health(proc, health, log)
        ready = time.perf_counter() - began
        status = subprocess.run(
            [str(CLI), "status", "--json"], env=env, capture_output=True, text=True, check=False
        )
        if status.returncode != 0:
            raise RuntimeError(f"`chat-stream status --json` failed: {status.stderr}")
        described = json.loads(status.stdout)
        if not described["api_url"].endswith(env["API_PORT"]):
            raise RuntimeError(f"status names another stack: {described['api_url']}")
        status_ready = time.perf_counter() - began
        _wait_output(proc, log, DEMO_PRINTED)
        demo_ready = time.perf_counter() - began
        pg_pid = _postmaster_pid(stack_dir)
        stop_began = time.perf_counter()
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
        stopped = time.perf_counter() - stop_began
        if code != 0:
            raise RuntimeError(f"`chat-stream dev` exited {code} on SIGINT; see {log}")
        if _alive(pg_pid):
            raise RuntimeError(f"PostgreSQL (pid {pg_pid}) still running after `dev` exited")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return {
        "ready_s": ready,
        "status_ready_s": status_ready,
        "demo_curl_s": demo_ready,
        "reported_ready_s": float(described.get("ready_seconds", "nan")),
        "shutdown_s": stopped,
    }


def _wait_health(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    with httpx.Client(timeout=1.0) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"`chat-stream dev` exited {proc.returncode}:\n{log.read_text()}"
                )
            try:
                if client.get(url).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.01)
    raise RuntimeError(f"`chat-stream dev` not ready after {READY_TIMEOUT_S}s; see {log}")


def _wait_output(proc: subprocess.Popen[bytes], log: Path, marker: bytes) -> None:
    """Wait until `dev` has printed `marker` (the demo curl that `make run` shows)."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while marker not in log.read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"`chat-stream dev` never printed {marker!r}; see {log}")
        time.sleep(0.01)


def bench_dev(workdir: Path, *, wheel: bool) -> dict[str, float]:
    """A cold `dev` (empty LOCAL_STACK_DIR), then a warm one on the folder it left behind."""
    stack_dir = workdir / "stack"
    cold = bench_dev_once(stack_dir, wheel=wheel)
    warm = bench_dev_once(stack_dir, wheel=wheel)
    return {f"cold_{k}": v for k, v in cold.items()} | {f"warm_{k}": v for k, v in warm.items()}


def _collect(samples: Samples, prefix: str, run: dict[str, float]) -> None:
    for key, value in run.items():
        samples.setdefault(f"{prefix}.{key}", []).append(value)


def run_all(runs: int, *, skip_dev: bool, skip_wheel: bool) -> Samples:
    installs: list[PgInstall] = []
    for found in (machine_install(), None if skip_wheel else wheel_install()):
        if found is not None:
            installs.append(found)
    samples: Samples = {}
    for i in range(runs):
        for install in installs:
            with tempfile.TemporaryDirectory(prefix="bench-start-") as tmp:
                _collect(samples, f"{install.source}.db", bench_database(install, Path(tmp)))
            if not skip_dev:
                with tempfile.TemporaryDirectory(prefix="bench-dev-") as tmp:
                    dev = bench_dev(Path(tmp), wheel=install.source == "wheel")
                    _collect(samples, f"{install.source}.dev", dev)
        print(f"run {i + 1}/{runs} done", file=sys.stderr)
    return samples


def machine_facts() -> dict[str, Any]:
    mem_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    return {
        "date": date.today().isoformat(),
        "nproc": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_avg_before": os.getloadavg(),
        "postgres": {i.source: i.version for i in (machine_install(), wheel_install()) if i},
    }


def summarise(samples: Samples) -> dict[str, dict[str, Any]]:
    return {
        key: {
            "median": statistics.median(values),
            "min": min(values),
            "max": max(values),
            "samples": values,
        }
        for key, values in samples.items()
    }


def print_table(summary: dict[str, dict[str, Any]]) -> None:
    print(f"{'measure (seconds)':<44} {'median':>8} {'min':>8} {'max':>8}")
    for key, row in summary.items():
        print(f"{key:<44} {row['median']:>8.3f} {row['min']:>8.3f} {row['max']:>8.3f}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.startup",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--runs", type=int, default=5, help="runs per measurement (default 5)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results here")
    parser.add_argument("--skip-dev", action="store_true", help="only the database measurements")
    parser.add_argument("--skip-wheel", action="store_true", help="only the machine's binaries")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.runs < 1:
        print("--runs must be at least 1", file=sys.stderr)
        return 2
    if machine_install() is None and wheel_install() is None:
        print("no PostgreSQL binaries found (machine or pgserver wheel)", file=sys.stderr)
        return 2
    if not args.skip_dev and not CLI.exists():
        print(f"{CLI} not found: run `make install` first", file=sys.stderr)
        return 2
    facts = machine_facts()
    samples = run_all(args.runs, skip_dev=args.skip_dev, skip_wheel=args.skip_wheel)
    facts["load_avg_after"] = os.getloadavg()
    summary = summarise(samples)
    print(json.dumps(facts))
    print_table(summary)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        report = {"machine": facts, "runs": args.runs, "results": summary}
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
