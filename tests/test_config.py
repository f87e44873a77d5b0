from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.config import Settings
from tests.conftest import ROOT, make_settings


def test_env_example_documents_every_setting() -> None:
    text = (ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", text, flags=re.M))
    assert documented == {name.upper() for name in Settings.model_fields}


def test_settings_read_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORS_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("LLM_AVAILABILITY_BUDGET", "2.5")
    settings = make_settings()
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    assert settings.llm_availability_budget == 2.5


def test_settings_reject_wrong_types(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_PORT", "not-a-port")
    with pytest.raises(ValueError, match="db_port"):
        make_settings()


def test_importing_config_builds_no_settings() -> None:
    source = Path(ROOT / "app" / "config.py").read_text()
    assert not re.search(r"^settings\s*=", source, flags=re.M)


def test_env_example_values_load_as_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for line in (ROOT / ".env.example").read_text().splitlines():
        if re.match(r"^[A-Z][A-Z0-9_]*=", line):
            key, _, value = line.partition("=")
            monkeypatch.setenv(key, value)
    loaded, default = make_settings(), Settings.model_construct()
    assert loaded.system_prompt == default.system_prompt
    assert loaded.llm_fallback_provider is None
    assert loaded.pg_bin is None
