"""`scripts/seed_usage.py`: demo data goes to the local stack, never into anyone's real data.

The databases here hold one real user (signed up, with a conversation, a message and a usage
row) next to whatever the seed loads: the seed must not write next to them unless it is the
local stack, and `--truncate` must leave them alone.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from types import ModuleType

import psycopg
import pytest

from app.db.migrate import apply_migrations
from app.local.postgres import free_port
from app.local.stack import LocalStack
from tests.support.database import MIGRATIONS, ROOT, FreshDatabase, fresh_database

SMALL = ["--users", "5", "--days", "3", "--requests", "200", "--seed", "3",
         "--end", "2026-11-20T00:00:00+00:00", "--quiet"]  # fmt: skip
REAL_EMAIL = "ana@coachme.example"


@pytest.fixture(scope="module")
def seed_usage() -> ModuleType:
    spec = importlib.util.spec_from_file_location("seed_usage", ROOT / "scripts" / "seed_usage.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _one(dsn: str, query: str) -> object:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(query).fetchone()
    assert row is not None
    return row[0]


def _with_real_user(db: FreshDatabase) -> FreshDatabase:
    """Migrate `db` and give it one real user with a conversation, a message and a usage row."""
    apply_migrations(db.dsn, MIGRATIONS)
    user, conversation = str(uuid.uuid4()), str(uuid.uuid4())
    with psycopg.connect(db.dsn) as conn:
        conn.execute(
            "insert into auth.users (id, email, aud, role, raw_app_meta_data) values"
            " (%s, %s, 'authenticated', 'authenticated', '{\"provider\": \"email\"}')",
            (user, REAL_EMAIL),
        )
        conn.execute(
            "insert into public.conversations (id, user_id, title) values (%s, %s, 'mine')",
            (conversation, user),
        )
        conn.execute(
            "insert into public.messages (conversation_id, user_id, role, content)"
            " values (%s, %s, 'user', 'hello')",
            (conversation, user),
        )
        conn.execute(
            "insert into public.usage_logs (user_id, conversation_id, provider, model, tokens_in,"
            " tokens_out, cache_read_tokens, cache_write_tokens, cost_usd, status, estimated)"
            " values (%s, %s, 'openai', 'gpt-4o', 10, 20, 0, 0, %s, 'completed', false)",
            (user, conversation, Decimal("0.00123")),
        )
    return db


def _real_rows(dsn: str) -> tuple[object, ...]:
    """The real user's rows: users, conversations, messages, usage rows."""
    counts = []
    for table in ("public.users", "public.conversations", "public.messages", "public.usage_logs"):
        key = "id" if table == "public.users" else "user_id"
        counts.append(
            _one(
                dsn,
                f"select count(*) from {table} where {key} ="  # noqa: S608 - fixed names
                f" (select id from auth.users where email = '{REAL_EMAIL}')",
            )
        )
    return tuple(counts)


def _seeded_usage(dsn: str) -> object:
    return _one(
        dsn,
        "select count(*) from public.usage_logs l join auth.users u on u.id = l.user_id"
        " where u.raw_app_meta_data ->> 'seeded_by' = 'chat-stream-seed'",
    )


@pytest.fixture
def real_db(fresh_db: FreshDatabase) -> FreshDatabase:
    return _with_real_user(fresh_db)


@pytest.fixture
def local_db(local_stack: LocalStack) -> Iterator[FreshDatabase]:
    """The database of a running local stack (another one than `real_db`), with a real user."""
    with fresh_database(local_stack) as db:
        yield _with_real_user(db)


def _project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, local: FreshDatabase | None) -> None:
    """Run from a checkout whose local stack (when `local`) is running on `local`'s database."""
    root = tmp_path / "project"
    (root / ".stack").mkdir(parents=True)
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    (root / ".env").write_text("LOCAL_STACK_DIR=.stack\n", encoding="utf-8")
    if local is not None:
        status = {"pid": os.getpid(), "db_url": local.dsn}
        (root / ".stack" / "status.json").write_text(json.dumps(status), encoding="utf-8")
    monkeypatch.chdir(root)
    monkeypatch.delenv("DATABASE_URL", raising=False)


def test_seed_usage_with_database_url_set_seeds_the_local_stack_not_that_database(
    seed_usage: ModuleType, real_db: FreshDatabase, local_db: FreshDatabase,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    _project(tmp_path, monkeypatch, local_db)
    monkeypatch.setenv("DATABASE_URL", real_db.dsn)  # as .env.example tells operators to

    assert seed_usage.main(SMALL) == 0

    assert _one(real_db.dsn, "select count(*) from auth.users") == 1
    assert _one(real_db.dsn, "select count(*) from public.usage_logs") == 1
    assert _seeded_usage(local_db.dsn) == 200


def test_seed_usage_with_database_url_set_and_no_local_stack_writes_nothing(
    seed_usage: ModuleType, real_db: FreshDatabase, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    _project(tmp_path, monkeypatch, None)
    monkeypatch.setenv("DATABASE_URL", real_db.dsn)

    assert seed_usage.main(SMALL) == 3

    assert "start the local stack" in capsys.readouterr().err
    assert _one(real_db.dsn, "select count(*) from auth.users") == 1
    assert _one(real_db.dsn, "select count(*) from public.usage_logs") == 1


def test_seed_usage_db_url_of_another_database_without_allow_non_local_is_refused(
    seed_usage: ModuleType, real_db: FreshDatabase, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    _project(tmp_path, monkeypatch, None)

    assert seed_usage.main(["--db-url", real_db.dsn, *SMALL]) == 1

    assert "--allow-non-local" in capsys.readouterr().err
    assert _one(real_db.dsn, "select count(*) from auth.users") == 1


def test_seed_usage_allow_non_local_refuses_a_database_holding_a_real_user(
    seed_usage: ModuleType, real_db: FreshDatabase, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    _project(tmp_path, monkeypatch, None)

    code = seed_usage.main(["--db-url", real_db.dsn, "--allow-non-local", "--truncate", *SMALL])

    assert code == 1
    assert "1 user(s) the seed did not make" in capsys.readouterr().err
    assert _one(real_db.dsn, "select count(*) from auth.users") == 1
    assert _real_rows(real_db.dsn) == (1, 1, 1, 1)


def test_seed_usage_truncate_on_the_local_stack_keeps_the_real_users_rows(
    seed_usage: ModuleType, local_db: FreshDatabase, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    _project(tmp_path, monkeypatch, local_db)

    first = seed_usage.main(SMALL)
    again = seed_usage.main(SMALL)  # the same seed twice: refused
    replaced = seed_usage.main([*SMALL, "--truncate"])

    assert (first, again, replaced) == (0, 1, 0)
    assert _real_rows(local_db.dsn) == (1, 1, 1, 1)  # truncate emptied them for everyone
    assert _seeded_usage(local_db.dsn) == 200
    assert _one(local_db.dsn, "select count(*) from auth.users") == 1 + 5


def test_seed_usage_allow_non_local_seeds_a_database_of_seeded_users_only(
    seed_usage: ModuleType, fresh_db: FreshDatabase, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    _project(tmp_path, monkeypatch, None)
    apply_migrations(fresh_db.dsn, MIGRATIONS)
    argv = ["--db-url", fresh_db.dsn, "--allow-non-local", *SMALL]

    first = seed_usage.main([*argv[:-1]])  # not quiet: says what it did
    assert "seeded 5 users" in capsys.readouterr().out
    again = seed_usage.main(argv)
    replaced = seed_usage.main([*argv, "--truncate"])

    assert (first, again, replaced) == (0, 1, 0)
    assert _one(fresh_db.dsn, "select count(*) from public.usage_logs") == 200


@pytest.mark.parametrize("argv", [["--users", "0"], ["--requests", "many"], ["--end", "soon"]])
def test_seed_usage_cli_usage_errors_exit_2(seed_usage: ModuleType, argv: list[str]) -> None:
    assert seed_usage.main(argv) == 2


def test_seed_usage_cli_unreachable_database_exits_3(seed_usage: ModuleType) -> None:
    dsn = f"postgresql://postgres:postgres@127.0.0.1:{free_port()}/postgres"

    code = seed_usage.main(["--db-url", dsn, "--allow-non-local", "--requests", "10", "--quiet"])

    assert code == 3
