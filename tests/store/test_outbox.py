"""The outbox on a volume shared by replicas: every spooled turn is replayed exactly once."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from app.core.domain import FinishResult
from app.errors import StoreError
from app.store.outbox import Outbox, replay_forever

pytestmark = pytest.mark.anyio


def spool_records(folder: Path, count: int) -> list[str]:
    """`count` records as `Outbox.spool` leaves them (the params are opaque to the outbox)."""
    folder.mkdir(parents=True, exist_ok=True)
    ids = [str(uuid.uuid4()) for _ in range(count)]
    for rid in ids:
        entry = {"params": {"p_request_id": rid}, "failures": 0}
        (folder / f"{rid}.json").write_bytes(orjson.dumps(entry))
    return ids


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file())


def test_outbox_two_replayers_racing_on_one_folder_send_each_record_exactly_once(
    tmp_path: Path,
) -> None:
    ids = spool_records(tmp_path, 200)
    sent: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(2)
    stored: list[int] = []

    def replica() -> None:
        outbox = Outbox(tmp_path)  # its own instance and claim name, as on another replica

        async def send(params: dict[str, Any]) -> FinishResult:
            with lock:
                sent.append(params["p_request_id"])
            await asyncio.sleep(0)
            return FinishResult(message_id=None)

        start.wait()
        stored.append(asyncio.run(outbox.replay(send)))

    threads = [threading.Thread(target=replica) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert Counter(sent) == Counter(ids)  # every record once, none twice
    assert sum(stored) == len(ids)
    assert leftovers(tmp_path) == []


async def test_outbox_record_claimed_by_one_replayer_is_skipped_by_the_other(
    tmp_path: Path,
) -> None:
    ids = spool_records(tmp_path, 3)
    first, second = Outbox(tmp_path), Outbox(tmp_path)
    holding, release = asyncio.Event(), asyncio.Event()
    sent: list[tuple[str, str]] = []

    async def slow_send(params: dict[str, Any]) -> FinishResult:
        sent.append(("first", params["p_request_id"]))
        holding.set()
        await release.wait()
        return FinishResult(message_id=None)

    async def quick_send(params: dict[str, Any]) -> FinishResult:
        sent.append(("second", params["p_request_id"]))
        return FinishResult(message_id=None)

    task = asyncio.create_task(first.replay(slow_send))
    await asyncio.wait_for(holding.wait(), 10)
    assert [p.name.split(".")[0] for p in first.claimed()] == [sent[0][1]]
    assert await second.replay(quick_send) == 2  # the other two; the held one is not touched
    release.set()
    assert await asyncio.wait_for(task, 10) == 1

    assert Counter(rid for _, rid in sent) == Counter(ids)
    assert leftovers(tmp_path) == []


async def test_outbox_failed_send_puts_the_claim_back_for_any_replica(tmp_path: Path) -> None:
    [rid] = spool_records(tmp_path, 1)

    async def database_away(params: dict[str, Any]) -> FinishResult:
        raise StoreError("database unreachable")

    assert await Outbox(tmp_path).replay(database_away) == 0
    assert leftovers(tmp_path) == [f"{rid}.json"]


async def test_outbox_stale_claim_of_a_dead_replayer_is_released_and_replayed(
    tmp_path: Path,
) -> None:
    [rid] = spool_records(tmp_path, 1)
    dead = Outbox(tmp_path)
    claim = dead._claim(tmp_path / f"{rid}.json")  # claimed, then the replica died
    assert claim is not None
    old = time.time() - 3600
    os.utime(claim, (old, old))
    sent: list[str] = []

    async def send(params: dict[str, Any]) -> FinishResult:
        sent.append(params["p_request_id"])
        return FinishResult(message_id=None)

    fresh_claims = Outbox(tmp_path, claim_ttl=7200)
    assert await fresh_claims.replay(send) == 0  # not stale yet for this TTL: left alone
    assert await Outbox(tmp_path, claim_ttl=60).replay(send) == 1
    assert sent == [rid]
    assert leftovers(tmp_path) == []


async def test_replay_forever_logs_how_many_spooled_turns_it_found_at_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool_records(tmp_path, 2)
    caplog.set_level(logging.INFO, logger="app.store.outbox")

    async def database_away(params: dict[str, Any]) -> FinishResult:
        raise StoreError("down")

    task = asyncio.create_task(replay_forever(Outbox(tmp_path), database_away, 60))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    found = [r.getMessage() for r in caplog.records if "found at start-up" in r.getMessage()]
    assert found == [f"outbox {tmp_path}: 2 spooled turn(s) found at start-up"]
