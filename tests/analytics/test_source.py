"""`resolve_source`: one rule, for every script and notebook, for which source to read."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from app.analytics import project
from app.analytics.source import resolve_source
from app.analytics.sources import PostgresSource, SourceUnreachable, SupabaseSource
from app.config import Settings
from app.local.stack import LocalStack
from tests.support.database import make_settings

LOCAL = "postgresql://postgres:postgres@127.0.0.1:1/local"
ENV_DB = "postgresql://postgres:secret@db.example.com:5432/postgres"


def _settings(tmp_path: Path, *, running: bool = True, **overrides: object) -> Settings:
    """Settings whose local stack folder holds a running stack's status (this process' pid)."""
    if running:
        status = {"pid": os.getpid(), "db_url": LOCAL}
        (tmp_path / project.STATUS_FILE).write_text(json.dumps(status), encoding="utf-8")
    return make_settings(local_stack_dir=tmp_path, **overrides)


def _where(source: PostgresSource | SupabaseSource) -> str:
    if isinstance(source, PostgresSource):
        return source.dsn
    source.close()
    return "supabase"


@pytest.mark.parametrize(
    ("arguments", "overrides", "expected"),
    [
        ({"db_url": "postgresql://given"}, {"database_url": ENV_DB}, "postgresql://given"),
        ({"supabase_url": "http://127.0.0.1:1", "service_key": "k"}, {"database_url": ENV_DB},
         "supabase"),
        ({}, {"database_url": ENV_DB, "supabase_url": "http://x", "supabase_service_role_key": "k"},
         ENV_DB),
        ({}, {"supabase_url": "http://127.0.0.1:1", "supabase_service_role_key": "k"}, "supabase"),
        ({}, {"supabase_url": "http://127.0.0.1:1", "supabase_secret_key": "sb_secret_k"},
         "supabase"),  # a 2026 project has only the secret key
        ({}, {"supabase_url": "http://127.0.0.1:1"}, LOCAL),  # no key: not a usable source
        ({}, {}, LOCAL),
        ({"db_url": "", "supabase_url": "", "service_key": ""}, {}, LOCAL),  # notebook defaults
    ],
)  # fmt: skip
def test_resolve_source_takes_arguments_then_settings_then_the_local_stack(
    tmp_path: Path, arguments: dict[str, str], overrides: dict[str, object], expected: str
) -> None:
    settings = _settings(tmp_path, **overrides)

    assert _where(resolve_source(**arguments, settings=settings)) == expected


def test_resolve_source_without_settings_steps_goes_to_the_local_stack(tmp_path: Path) -> None:
    settings = _settings(tmp_path, database_url=ENV_DB)

    source = resolve_source(settings=settings, from_settings=False, supabase=False)

    assert _where(source) == LOCAL


def test_resolve_source_sql_only_skips_supabase_settings(tmp_path: Path) -> None:
    settings = _settings(tmp_path, supabase_url="http://127.0.0.1:1", supabase_service_role_key="k")

    assert _where(resolve_source(settings=settings, supabase=False)) == LOCAL


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"db_url": "postgresql://a", "supabase_url": "http://b"}, "not both"),
        ({"supabase_url": "http://b"}, "SUPABASE_SECRET_KEY"),
    ],
)
def test_resolve_source_contradictory_or_incomplete_arguments_are_refused(
    tmp_path: Path, arguments: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        resolve_source(**arguments, settings=_settings(tmp_path))


def test_resolve_source_with_nothing_given_and_no_stack_is_unreachable(tmp_path: Path) -> None:
    with pytest.raises(SourceUnreachable, match="start the local stack"):
        resolve_source(settings=_settings(tmp_path, running=False))


def test_local_database_url_reads_what_the_local_stack_writes(tmp_path: Path) -> None:
    settings = make_settings(local_stack_dir=tmp_path)
    stack = LocalStack(settings, stack_dir=tmp_path, api_port=1, db_port=2, durable=False)

    stack.write_status()
    found = project.local_database_url(settings)
    stack.clear_status()

    assert found == stack.ctx.db_url
    assert project.local_database_url(settings) is None
