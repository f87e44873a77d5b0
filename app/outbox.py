"""A durable local outbox for final writes that could not reach the database.

Each spooled turn is one JSON file, written to a temporary name, fsynced and renamed, so a crash
leaves either the whole record or nothing. A replay loop sends them with the service role through
the same idempotent `chat_finish`, so a replay after a partial success changes nothing. A record
that keeps failing for a reason retrying cannot fix is moved to `dead/` and logged as an error:
never silently dropped.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson

from app.domain import FinishResult, TurnRecord
from app.errors import AppError, StoreError
from app.store import finish_params

logger = logging.getLogger(__name__)

Replayer = Callable[[dict[str, Any]], Awaitable[FinishResult]]
MAX_PERMANENT_FAILURES = 5


class Outbox:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.dead = self.directory / "dead"

    def spool(self, user_id: str, record: TurnRecord) -> None:
        """Write the `chat_finish` call to disk, durably, before returning."""
        self.directory.mkdir(parents=True, exist_ok=True)
        entry = {"params": finish_params(user_id, record), "failures": 0}
        name = f"{record.turn_id}.json"
        self._write(self.directory / name, entry)
        logger.warning("spooled turn %s to the outbox (%s)", record.turn_id, self.directory)

    def _write(self, path: Path, entry: dict[str, Any]) -> None:
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, orjson.dumps(entry))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def pending(self) -> list[Path]:
        if not self.directory.exists():
            return []
        return sorted(self.directory.glob("*.json"), key=lambda p: p.stat().st_mtime)

    def depth(self) -> int:
        return len(self.pending())

    async def replay(self, send: Replayer) -> int:
        """Send every pending record once; return how many were stored."""
        stored = 0
        for path in self.pending():
            try:
                entry = orjson.loads(path.read_bytes())
            except (OSError, orjson.JSONDecodeError):
                logger.exception("unreadable outbox file %s; moving it aside", path)
                self._bury(path)
                continue
            try:
                await send(entry["params"])
            except StoreError as exc:  # database still away: keep it, try later
                logger.info("outbox replay deferred (%s)", exc.detail)
                break
            except AppError as exc:
                entry["failures"] = int(entry.get("failures", 0)) + 1
                entry["last_error"] = f"{exc.code}: {exc.detail}"
                if entry["failures"] >= MAX_PERMANENT_FAILURES:
                    logger.error(
                        "outbox record %s failed %d times (%s); moved to %s",
                        path.name,
                        entry["failures"],
                        entry["last_error"],
                        self.dead,
                    )
                    self._write(path, entry)
                    self._bury(path)
                else:
                    self._write(path, entry)
                continue
            path.unlink(missing_ok=True)
            stored += 1
        if stored:
            logger.info("outbox replayed %d record(s)", stored)
        return stored

    def _bury(self, path: Path) -> None:
        self.dead.mkdir(parents=True, exist_ok=True)
        os.replace(path, self.dead / path.name)


async def replay_forever(outbox: Outbox, send: Replayer, interval: float) -> None:
    """The lifespan's background task: replay, sleep, repeat, until cancelled."""
    while True:
        await outbox.replay(send)
        await asyncio.sleep(interval)
