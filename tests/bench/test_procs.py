"""The benchmark's processes: a kill takes the whole group down at once, as a crash would."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import psutil

from bench.procs import Procs, clean_env

# A parent that starts a child and waits: the kill must reach both, and neither may clean up.
PARENT = (
    "import pathlib, subprocess, sys, time\n"
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
    "pathlib.Path(sys.argv[1] + '.tmp').write_text(str(child.pid))\n"
    "pathlib.Path(sys.argv[1] + '.tmp').rename(sys.argv[1])\n"
    "try:\n"
    "    time.sleep(120)\n"
    "finally:\n"
    "    pathlib.Path(sys.argv[2]).write_text('cleaned up')\n"
)


def _wait_for(path: Path, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)
    return path.read_text()


def _status(process: psutil.Process) -> str:
    try:
        return str(process.status())
    except psutil.NoSuchProcess:
        return psutil.STATUS_DEAD


def test_proc_kill_stops_the_whole_group_without_letting_it_clean_up(tmp_path: Path) -> None:
    procs = Procs(tmp_path)
    child_file, cleanup_file = tmp_path / "child.pid", tmp_path / "cleanup"
    argv = [sys.executable, "-c", PARENT, str(child_file), str(cleanup_file)]
    proc = procs.start("doomed", argv, clean_env())
    try:
        child = psutil.Process(int(_wait_for(child_file)))

        proc.kill()

        _, alive = psutil.wait_procs([child], timeout=30)
        assert proc.popen.returncode == -9
        assert [
            p for p in alive if _status(p) != psutil.STATUS_ZOMBIE
        ] == []  # dead, maybe unreaped
        assert not cleanup_file.exists()
    finally:
        procs.stop_all()
