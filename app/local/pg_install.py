"""Where the PostgreSQL binaries come from: the machine's (PG_BIN, `pg_config --bindir`,
/usr/lib/postgresql; they carry contrib extensions such as pgcrypto), else the `pgserver` wheel
(PostgreSQL 16 with plpgsql and vector only)."""

from __future__ import annotations

import glob
import importlib.util
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Literal


class PostgresError(RuntimeError):
    """The embedded cluster could not be found, initialised or started."""


@dataclass(frozen=True)
class PgInstall:
    bin_dir: Path
    source: Literal["machine", "wheel"]

    @property
    def share_dir(self) -> Path:
        out = subprocess.run(
            [str(self.bin_dir / "pg_config"), "--sharedir"],
            capture_output=True,
            text=True,
            check=True,
        )
        return Path(out.stdout.strip())

    @property
    def has_pgcrypto(self) -> bool:
        return (self.share_dir / "extension" / "pgcrypto.control").exists()

    @property
    def version(self) -> str:
        out = subprocess.run(
            [str(self.bin_dir / "postgres"), "--version"],
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()


def _has_server(bin_dir: Path) -> bool:
    return all((bin_dir / name).is_file() for name in ("postgres", "initdb", "pg_config"))


def machine_install(pg_bin: Path | None = None) -> PgInstall | None:
    """PostgreSQL binaries on this machine: PG_BIN, `pg_config --bindir`, /usr/lib/postgresql."""
    candidates: list[Path] = []
    if pg_bin:
        candidates.append(Path(pg_bin))
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if out.returncode == 0:
            candidates.append(Path(out.stdout.strip()))
    candidates += [
        Path(p)
        for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_major_of_path, reverse=True)
    ]
    for candidate in candidates:
        if _has_server(candidate):
            return PgInstall(candidate, "machine")
    return None


def _major_of_path(path: str) -> int:
    try:
        return int(Path(path).parent.name)
    except ValueError:
        return 0


def wheel_install() -> PgInstall | None:
    """The binaries bundled in the `pgserver` wheel, if it is installed."""
    # find_spec, not import: importing pgserver has side effects (platformdirs warnings).
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        return None
    bin_dir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    return PgInstall(bin_dir, "wheel") if _has_server(bin_dir) else None


def find_install(pg_bin: Path | None = None, *, prefer_wheel: bool = False) -> PgInstall:
    order = (wheel_install, lambda: machine_install(pg_bin))
    if not prefer_wheel:
        order = (lambda: machine_install(pg_bin), wheel_install)
    for finder in order:
        found = finder()
        if found:
            return found
    raise PostgresError(
        "No PostgreSQL binaries found: set PG_BIN, install PostgreSQL, or `pip install pgserver`."
    )
