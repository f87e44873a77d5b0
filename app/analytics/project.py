"""Where the project is, whatever the working directory: the one lookup scripts and notebooks use.

Jupyter (`jupyter lab notebooks/`, `nbconvert --execute`) starts a notebook's kernel in the
notebook's folder, scripts run from wherever the shell is. Relative paths in the settings
(`.env`, `LOCAL_STACK_DIR=.local`) would then point into the wrong folder. `find_root` walks up
from a start folder (the working directory by default) to the first folder holding a
`pyproject.toml` of this project; when there is none (the kernel started outside the tree) the
checkout this package was imported from is used. `settings()` reads `.env` from that root and
anchors the relative local-stack folder there; `local_database_url` finds the running local
stack's database.
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path

from app.config import Settings

PROJECT_NAME = "chat-stream"
_PACKAGE_ROOT = Path(__file__).resolve().parents[2]


def _is_project(folder: Path) -> bool:
    try:
        meta = tomllib.loads((folder / "pyproject.toml").read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return False
    return bool(meta.get("project", {}).get("name") == PROJECT_NAME)


def find_root(start: Path | None = None) -> Path:
    """The nearest folder at or above `start` (default: cwd) with this project's pyproject.toml."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if _is_project(folder):
            return folder
    return _PACKAGE_ROOT


def settings(root: Path | None = None) -> Settings:
    """Settings with `.env` read from the project root and the local-stack folder anchored there.

    Environment variables still win over `.env`, as everywhere else.
    """
    base = root or find_root()
    loaded = Settings(_env_file=base / ".env")  # type: ignore[call-arg]
    stack = loaded.local_stack_dir
    if stack.is_absolute():
        return loaded
    return loaded.model_copy(update={"local_stack_dir": base / stack})


def migrations_dir(root: Path | None = None) -> Path:
    """The project's `supabase/migrations` folder."""
    return (root or find_root()) / "supabase" / "migrations"


STATUS_FILE = "status.json"  # what `app.local.stack.LocalStack.write_status` writes


def local_database_url(settings: Settings) -> str | None:
    """The database of the local stack running for these settings (`make run`), else None.

    Read from the status file the stack writes into its folder (`LOCAL_STACK_DIR`), as
    `app.local.stack.read_status` reads it: the file must name a live process. The analysts'
    side reads the file rather than importing `app.local` (the import contracts keep it out).
    """
    path = Path(settings.local_stack_dir) / STATUS_FILE
    try:
        status = json.loads(path.read_text(encoding="utf-8"))
        os.kill(int(status["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    url = status.get("db_url")
    return url if isinstance(url, str) and url else None


def output_dir(name: str, chosen: str | Path = "", root: Path | None = None) -> Path:
    """Where a notebook or script writes its files: `chosen` when given, else `out/<name>` at
    the project root, which git ignores (running a notebook leaves the checkout clean)."""
    return Path(chosen) if str(chosen) else (root or find_root()) / "out" / name
