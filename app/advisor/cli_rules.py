"""What a migration file must be for both appliers: `supabase db push` and `chat-stream migrate`.

The Supabase CLI (pkg/migration, `ExecBatch`) sends a file's statements as one extended-protocol
batch with one Sync at the end: one *implicit* transaction, which PostgreSQL does not count as a
transaction block. `chat-stream migrate` runs the file in an explicit transaction. So, at the top
level of a file (docs/design.md "Migrations"; each rule checked against the real CLI by
tests/advisor/test_cli_rules.py):

- `transaction_control`: no BEGIN/COMMIT/ROLLBACK/END/ABORT/PREPARE TRANSACTION. Under the CLI a
  COMMIT commits what came before and the rest runs statement by statement, so a later failure
  leaves half a file applied and unrecorded; under `chat-stream migrate` it ends our transaction.
- `transaction_block_required`: no LOCK, SAVEPOINT, RELEASE, ROLLBACK TO, DECLARE (cursor) or
  SET TRANSACTION: the CLI refuses them outside a block (25P01/25001). Take a lock inside a DO
  block: it is held to the end of the file's transaction under both appliers.
- `no_transaction_block`: no CREATE/DROP INDEX CONCURRENTLY, REINDEX … CONCURRENTLY, VACUUM,
  CREATE/DROP DATABASE or TABLESPACE, ALTER SYSTEM, DETACH PARTITION … CONCURRENTLY, or
  subscriptions: they fail inside `chat-stream migrate`'s transaction, and under the CLI they
  commit the statements before them (half a file applied, unrecorded, if a later one fails).
- `file_name`: a `.sql` file must be named `<digits>_<name>.sql`; both appliers skip any other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from app.db.migrate import MIGRATION_NAME
from app.db.sqlsplit import split_statements


@dataclass(frozen=True)
class Rule:
    name: str
    pattern: re.Pattern[str]
    why: str


def _words(text: str) -> re.Pattern[str]:
    return re.compile(text, re.IGNORECASE | re.DOTALL)


# Order matters: ROLLBACK TO is a block-only command, not transaction control.
RULES = (
    Rule(
        "transaction_block_required",
        _words(
            r"(lock|savepoint|release|declare)\b|rollback\s+(?:work\s+|transaction\s+)?to\b"
            r"|set\s+transaction\b"
        ),
        "supabase db push runs the file as one implicit transaction, where this is refused "
        "outside a transaction block (25P01); put it inside a DO block",
    ),
    Rule(
        "transaction_control",
        _words(
            r"(begin|start\s+transaction|commit|end|rollback|abort)\b(?!\s+prepared)"
            r"|(prepare|commit|rollback)\s+(transaction|prepared)\b"
        ),
        "supabase db push runs the file as one implicit transaction: this ends it, so the rest "
        "runs statement by statement and a failure leaves half the file applied and unrecorded",
    ),
    Rule(
        "no_transaction_block",
        _words(
            r"(create\s+(unique\s+)?index|drop\s+index|reindex\b.*)\s*\bconcurrently\b"
            r"|vacuum\b|(create|drop)\s+(database|tablespace)\b|alter\s+system\b"
            r"|alter\s+table\b.*\bdetach\s+partition\b.*\bconcurrently\b"
            r"|(create|alter|drop)\s+subscription\b"
        ),
        "cannot run inside chat-stream migrate's transaction, and under supabase db push it "
        "commits the statements before it; ship it outside the migrations",
    ),
)


def _head(sql: str) -> str:
    """The statement without its leading comments (the splitter keeps them)."""
    text = sql
    while True:
        text = text.lstrip()
        if text.startswith("--"):
            text = text.partition("\n")[2]
        elif text.startswith("/*"):
            text = text[text.find("*/") + 2 :] if "*/" in text else ""
        else:
            return text


def problems(migrations_dir: Path) -> list[str]:
    """One line per violation: `file:line: rule: statement … — why`."""
    found: list[str] = []
    for path in sorted(Path(migrations_dir).glob("*.sql")):
        if not MIGRATION_NAME.match(path.name):
            found.append(
                f"{path}: file_name: both appliers skip it; name it <14-digit timestamp>_<name>.sql"
            )
            continue
        for stmt in split_statements(path.read_text()):
            head = _head(stmt.sql)
            for rule in RULES:
                if rule.pattern.match(head):
                    shown = " ".join(head.split())[:60]
                    found.append(f"{path}:{stmt.code_line}: {rule.name}: {shown} — {rule.why}")
                    break
    return found
