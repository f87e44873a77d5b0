"""Regenerate what a reviewer audits the migrations with: `supabase/schema.sql` (every object's
current definition) and the database-objects table in docs/design.md (the migration that last
defined each object, and who may call or read it).

Both come from a fresh embedded PostgreSQL migrated with supabase/migrations, one file at a time.
Exit codes: 0 written (or, with --check, up to date), 1 stale (--check), 3 no database.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from app.advisor.inventory import inventory, render, replace_table
from app.advisor.schema_dump import dump_schema
from app.db.migrate import default_migrations_dir
from app.local.postgres import find_install
from app.local.scratch import ScratchError, fresh_database

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_SQL = ROOT / "supabase" / "schema.sql"
DESIGN = ROOT / "docs" / "design.md"

EXAMPLES = """\
examples:
  # after adding or changing a migration: rewrite both files, then commit them with it
  python scripts/audit_schema.py

  # what CI's test does: fail if either file is stale
  python scripts/audit_schema.py --check
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="audit_schema.py",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if stale")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    install = find_install()
    major = int(re.search(r"\d+", install.version).group())  # type: ignore[union-attr]
    try:
        with fresh_database() as (dsn, _label):
            objects = inventory(dsn, default_migrations_dir())
            schema = dump_schema(install.bin_dir / "pg_dump", dsn, major)
    except ScratchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    design = replace_table(DESIGN.read_text(), render(objects))
    stale = [p for p, text in ((SCHEMA_SQL, schema), (DESIGN, design)) if _read(p) != text]
    if args.check:
        for path in stale:
            print(f"stale: {path.relative_to(ROOT)} (run python scripts/audit_schema.py)")
        return 1 if stale else 0
    SCHEMA_SQL.write_text(schema)
    DESIGN.write_text(design)
    print(f"wrote {SCHEMA_SQL.relative_to(ROOT)} and the objects table in docs/design.md")
    return 0


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


if __name__ == "__main__":
    raise SystemExit(main())
