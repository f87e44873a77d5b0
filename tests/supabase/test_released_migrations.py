"""Released migrations are frozen: an edit to a shipped file fails here (the hash lock)."""

from __future__ import annotations

import hashlib

from app.db.migrate import discover
from tests.support.database import MIGRATIONS
from tests.support.released import (
    LOCK_FILE,
    ROLLUP,
    SHIPPED_ROLLUP_SHA256,
    pinned,
    shipped_rollup_text,
)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_released_migrations_match_their_pinned_hashes() -> None:
    locked = pinned()
    assert locked, f"{LOCK_FILE} pins nothing"
    changed = [
        f"{path.name}: pinned {digest[:12]}…, now {_sha256(path.read_bytes())[:12]}…"
        for path, digest in locked.items()
        if path.exists() and _sha256(path.read_bytes()) != digest
    ]
    assert not changed, (
        f"released migrations are append-only: write a new migration instead of editing {changed}"
    )


def test_released_migrations_are_all_still_there() -> None:
    missing = [path.name for path in pinned() if not path.exists()]
    assert not missing, f"released migrations were removed or renamed: {missing}"


def test_unreleased_migrations_sort_after_every_released_one() -> None:
    """`supabase db push` refuses a file older than the last one applied (without --include-all):
    a new migration must carry a timestamp after every released one."""
    released = {path.name for path in pinned()}
    last = max(released)
    early = [m.path.name for m in discover(MIGRATIONS) if m.path.name not in released]
    assert all(name > last for name in early), f"{early} sort before released {last}"


def test_rollup_fix_only_moves_the_lock_into_a_do_block() -> None:
    """The sanctioned edit (issue 21): putting the top-level LOCK TABLE back gives, byte for byte,
    the file that shipped; so the rest of the file is as released."""
    assert _sha256(shipped_rollup_text().encode()) == SHIPPED_ROLLUP_SHA256
    assert _sha256(ROLLUP.read_bytes()) != SHIPPED_ROLLUP_SHA256
