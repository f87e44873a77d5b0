"""Checks of this host: the outbox folder is writable."""

from __future__ import annotations

import os
import uuid

from app.ops.check.project import Project
from app.ops.check.result import Result


def check_outbox(p: Project) -> Result:
    folder = p.settings.outbox_dir
    scratch = folder / f".check-{uuid.uuid4().hex}.tmp"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, b"{}")
            os.fsync(fd)
        finally:
            os.close(fd)
        scratch.unlink()
    except OSError as exc:
        return Result("outbox", "fail", f"OUTBOX_DIR {folder} is not writable ({exc.strerror})")
    waiting = len(list(folder.glob("*.json")))
    return Result("outbox", "ok", f"OUTBOX_DIR {folder} is writable ({waiting} spooled turn(s))")
