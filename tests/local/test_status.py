"""`chat-stream status`: the 2026 keys first, the legacy ones kept and marked deprecated."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app import cli
from app.local.keys import DEFAULT_PUBLISHABLE_KEY, DEFAULT_SECRET_KEY
from app.local.stack import LocalStack


@pytest.fixture
def running(local_stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The session stack's status file, owned by this (live) process."""
    local_stack.write_status()
    monkeypatch.setenv("LOCAL_STACK_DIR", str(local_stack.stack_dir))
    return local_stack.stack_dir


def test_status_json_leads_with_publishable_and_secret_keys_and_tags_the_legacy_ones(
    running: Path, local_stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)

    assert status["publishable_key"] == DEFAULT_PUBLISHABLE_KEY
    assert status["secret_key"] == DEFAULT_SECRET_KEY
    keys = list(status)
    assert keys.index("publishable_key") < keys.index("anon_key")
    assert status["anon_key"] == local_stack.keys.anon_key
    assert status["deprecated"] == ["anon_key", "service_role_key", "jwt_secret"]
    assert status["signing_key_id"] == local_stack.keys.kid


def test_status_text_marks_the_legacy_keys_deprecated(
    running: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["status"]) == 0
    lines = {line.split(":", 1)[0].strip(): line for line in capsys.readouterr().out.splitlines()}

    assert lines["publishable_key"].endswith(DEFAULT_PUBLISHABLE_KEY)
    assert lines["secret_key"].endswith(DEFAULT_SECRET_KEY)
    for legacy in ("anon_key", "service_role_key", "jwt_secret"):
        assert lines[legacy].endswith("(deprecated)")
    assert "deprecated" not in lines
