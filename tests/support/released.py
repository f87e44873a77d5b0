"""The released-migrations lock (`supabase/released-migrations.sha256`, `sha256sum` format) and the
one sanctioned edit of a released file: the rollup's top-level LOCK TABLE moved into a DO block."""

from __future__ import annotations

from pathlib import Path

from tests.support.database import MIGRATIONS, ROOT

LOCK_FILE = ROOT / "supabase" / "released-migrations.sha256"

ROLLUP = MIGRATIONS / "20261201000400_usage_daily_rollup.sql"
# sha256 of the rollup file as it shipped (before the Supabase CLI fix, issue 21).
SHIPPED_ROLLUP_SHA256 = "bbb28a7458c69843007e1433977ad2ba60c318f75ef01cd753d37089049acc9d"
_SHIPPED_LOCK = "lock table public.usage_logs in share row exclusive mode;\n"


def pinned() -> dict[Path, str]:
    """Released migration file → its pinned sha256."""
    out: dict[Path, str] = {}
    for line in LOCK_FILE.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            digest, name = line.split(maxsplit=1)
            out[ROOT / name.lstrip("*")] = digest
    return out


def shipped_rollup_text() -> str:
    """Today's rollup file with its DO-block lock put back as the shipped top-level statement."""
    fixed = ROLLUP.read_text()
    start = fixed.index("-- The Supabase CLI runs a file as one implicit transaction")
    end = fixed.index("$$;\n", fixed.index("do $$", start)) + len("$$;\n")
    return fixed[:start] + _SHIPPED_LOCK + fixed[end:]
