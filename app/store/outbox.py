"""A durable local outbox for final writes that could not reach the database.

Each spooled turn is one JSON file, written to a temporary name, fsynced and renamed, so a crash
leaves either the whole record or nothing. A replay loop sends them with the service role through
the same idempotent `chat_finish`, so a replay after a partial success changes nothing. A record
that keeps failing for a reason retrying cannot fix is moved to `dead/` and logged as an error:
never silently dropped.

Any replica can replay any record. `OUTBOX_DIR` belongs on a persistent volume (a container's own
disk dies with it), shared by every replica: a replayer first claims a record by renaming it to
`<turn>.claimed-<replayer>.json`, which is atomic on one file system, so exactly one replayer
sends it. A failed send puts it back. A claim older than `claim_ttl` (its replayer died between
claim and delete) goes back too, so at worst a crash replays a record twice, which the idempotent
`chat_finish` turns into one write.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson

from app.core.domain import FinishResult, TurnRecord
from app.errors import AppError, StoreError
from app.store.payloads import finish_params

logger = logging.getLogger(__name__)

Replayer = Callable[[dict[str, Any]], Awaitable[FinishResult]]
MAX_PERMANENT_FAILURES = 5
_CLAIMED = ".claimed-"
CLAIM_TTL_SECONDS = 300.0  # far above one send (bounded by DB_TIMEOUT_SECONDS and its retry)


def _replayer_name() -> str:
    host = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname())[:40]
    return f"{host}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class Outbox:
    def __init__(self, directory: Path, *, claim_ttl: float = CLAIM_TTL_SECONDS) -> None:
        self.directory = Path(directory)
        self.dead = self.directory / "dead"
        self.claim_ttl = claim_ttl
        self.owner = _replayer_name()

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
        """Unclaimed records, oldest first (another replica may claim any of them meanwhile)."""
        if not self.directory.exists():
            return []
        dated = []
        for path in self.directory.glob("*.json"):
            if _CLAIMED in path.name:
                continue
            try:
                dated.append((path.stat().st_mtime, path))
            except FileNotFoundError:  # claimed by another replica since the listing
                continue
        return [path for _, path in sorted(dated)]

    def claimed(self) -> list[Path]:
        return sorted(self.directory.glob(f"*{_CLAIMED}*.json")) if self.directory.exists() else []

    def depth(self) -> int:
        """Records not yet stored: waiting, or being replayed right now."""
        return len(self.pending()) + len(self.claimed())

    async def replay(self, send: Replayer) -> int:
        """Claim and send every pending record once; return how many were stored."""
        self.release_stale_claims()
        stored = 0
        for path in self.pending():
            claim = self._claim(path)
            if claim is None:
                continue  # another replica took it
            try:
                entry = orjson.loads(claim.read_bytes())
            except (OSError, orjson.JSONDecodeError):
                logger.exception("unreadable outbox file %s; moving it aside", path)
                self._bury(claim, path.name)
                continue
            try:
                await send(entry["params"])
            except StoreError as exc:  # database still away: put it back, try later
                os.replace(claim, path)
                logger.info("outbox replay deferred (%s)", exc.detail)
                break
            except AppError as exc:
                entry["failures"] = int(entry.get("failures", 0)) + 1
                entry["last_error"] = f"{exc.code}: {exc.detail}"
                self._write(claim, entry)
                if entry["failures"] >= MAX_PERMANENT_FAILURES:
                    logger.error(
                        "outbox record %s failed %d times (%s); moved to %s",
                        path.name,
                        entry["failures"],
                        entry["last_error"],
                        self.dead,
                    )
                    self._bury(claim, path.name)
                else:
                    os.replace(claim, path)
                continue
            claim.unlink(missing_ok=True)
            stored += 1
        if stored:
            logger.info("outbox replayed %d record(s)", stored)
        return stored

    def _claim(self, path: Path) -> Path | None:
        """Rename `path` to a name of ours: atomic, so one replayer wins."""
        claim = path.with_name(f"{path.stem}{_CLAIMED}{self.owner}.json")
        try:
            os.rename(path, claim)
        except FileNotFoundError:
            return None
        os.utime(claim)  # the claim's age starts now (a rename keeps the spool time)
        return claim

    def release_stale_claims(self) -> int:
        """Put back claims older than `claim_ttl`: their replayer died before finishing."""
        released = 0
        now = time.time()
        for claim in self.claimed():
            try:
                if now - claim.stat().st_mtime < self.claim_ttl:
                    continue
                os.rename(claim, self.directory / f"{claim.name.split(_CLAIMED)[0]}.json")
            except FileNotFoundError:  # its replayer finished, or another replica released it
                continue
            released += 1
            logger.warning(
                "outbox: released %s, claimed over %.0fs ago", claim.name, self.claim_ttl
            )
        return released

    def _bury(self, path: Path, name: str) -> None:
        self.dead.mkdir(parents=True, exist_ok=True)
        os.replace(path, self.dead / name)


async def replay_forever(outbox: Outbox, send: Replayer, interval: float) -> None:
    """The lifespan's background task: say what was found, then replay, sleep, repeat."""
    found = outbox.depth()
    logger.log(
        logging.WARNING if found else logging.INFO,
        "outbox %s: %d spooled turn(s) found at start-up",
        outbox.directory,
        found,
    )
    while True:
        await outbox.replay(send)
        await asyncio.sleep(interval)
