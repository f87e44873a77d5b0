"""A database at the previous release upgrades in place: `chat-stream migrate` / `supabase db push`
apply only the new files, and what was stored before keeps its meaning."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import psycopg

from app.db.migrate import apply_migrations
from tests.support.database import MIGRATIONS, FreshDatabase

PREVIOUS_RELEASE = "20261124000300"  # the last migration the first release shipped


def _previous_release(folder: Path) -> Path:
    folder.mkdir()
    for path in sorted(MIGRATIONS.glob("*.sql")):
        if path.name.split("_", 1)[0] <= PREVIOUS_RELEASE:
            shutil.copy(path, folder / path.name)
    return folder


def test_database_at_previous_release_upgrades_and_keeps_its_rows(
    fresh_db: FreshDatabase, tmp_path: Path
) -> None:
    old = apply_migrations(fresh_db.dsn, _previous_release(tmp_path / "old"))
    user, conv, answer, attempt = (uuid.uuid4() for _ in range(4))
    with psycopg.connect(fresh_db.superuser_dsn, autocommit=True) as conn:
        conn.execute(
            "insert into auth.users (id, aud, role, email, created_at, updated_at)"
            " values (%s, 'authenticated', 'authenticated', 'old@example.test', now(), now())",
            (user,),
        )
        conn.execute("insert into public.conversations (id, user_id) values (%s, %s)", (conv, user))
        conn.execute(
            "insert into public.messages (id, conversation_id, user_id, role, content, request_id)"
            " values (%s, %s, %s, 'assistant', 'hello', %s)",
            (answer, conv, user, attempt),
        )
        conn.execute(
            "insert into public.usage_logs (request_id, user_id, conversation_id, message_id,"
            " model, tokens_in, cost_usd) values (%s, %s, %s, %s, 'm', 10, 0.5)",
            (attempt, user, conv, answer),
        )

    new = apply_migrations(fresh_db.dsn, MIGRATIONS)

    assert old and new and {m.version for m in old}.isdisjoint({m.version for m in new})
    assert apply_migrations(fresh_db.dsn, MIGRATIONS) == []  # nothing left to apply
    with psycopg.connect(fresh_db.superuser_dsn) as conn:
        usage = conn.execute(
            "select turn_id, attempt_id, request_id, status, cost_usd::text from public.usage_logs"
        ).fetchall()
        message = conn.execute("select turn_id, content from public.messages").fetchall()
    # The old per-turn request id is both the turn and the attempt of the row it produced.
    assert usage == [(attempt, attempt, attempt, "completed", "0.50000000")]
    assert message == [(attempt, "hello")]
