from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.config import Settings, configured_providers, explain, service_problems
from app.local.postgres import free_port
from app.local.stack import LocalStack
from tests.support.database import ROOT, make_settings


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


def test_settings_read_jwt_secret_as_the_legacy_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """`JWT_SECRET` is the name Supabase's own services read; both names set the one secret."""
    monkeypatch.setenv("JWT_SECRET", "the-legacy-secret-of-at-least-32-characters")
    assert (
        Settings(_env_file=None).supabase_jwt_secret.get_secret_value()
        == "the-legacy-secret-of-at-least-32-characters"
    )
    monkeypatch.setenv("SUPABASE_JWT_SECRET", "the-supabase-name-wins-when-both-are-set-0123")
    assert Settings(_env_file=None).supabase_jwt_secret.get_secret_value().startswith("the-supa")


def test_settings_reject_wrong_types(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_PORT", "not-a-port")
    with pytest.raises(ValueError, match="db_port"):
        make_settings()


def test_importing_config_builds_no_settings() -> None:
    for module in (ROOT / "app" / "config").glob("*.py"):
        assert not re.search(r"^settings\s*=", module.read_text(), flags=re.M), module


def test_env_example_values_load_as_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for line in (ROOT / ".env.example").read_text().splitlines():
        if re.match(r"^[A-Z][A-Z0-9_]*=", line):
            key, _, value = line.partition("=")
            monkeypatch.setenv(key, value)
    loaded, default = make_settings(), Settings.model_construct()
    assert loaded.system_prompt == default.system_prompt
    assert loaded.llm_fallback_provider is None
    assert loaded.pg_bin is None


def test_settings_empty_values_in_a_dotenv_file_load_as_defaults(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("SYSTEM_PROMPT=\nPG_BIN=\nLLM_FALLBACK_PROVIDER=\nDB_PORT=\n")
    loaded = Settings(_env_file=dotenv)  # type: ignore[call-arg]
    default = Settings.model_construct()
    assert (loaded.system_prompt, loaded.pg_bin, loaded.db_port) == (
        default.system_prompt,
        None,
        default.db_port,
    )
    assert loaded.llm_fallback_provider is None


# --- validation: one line naming the variable ---------------------------------------------------
def _marks() -> dict[str, str]:
    """Each setting of .env.example → its "(required in production…)" or "(optional…)" mark."""
    lines = (ROOT / ".env.example").read_text().splitlines()
    marks: dict[str, str] = {}
    for i, line in enumerate(lines):
        if not re.match(r"^[A-Z][A-Z0-9_]*=", line):
            continue
        marks[line.partition("=")[0]] = ""
        above = i - 1
        while above >= 0 and lines[above].startswith("#"):  # the comment block above it
            mark = re.match(r"^# \((required in production[^)]*|optional[^)]*)\)", lines[above])
            if mark:
                marks[line.partition("=")[0]] = mark.group(1)
                break
            above -= 1
    return marks


def test_env_example_marks_every_setting_required_or_optional() -> None:
    unmarked = [name for name, mark in _marks().items() if not mark]
    assert unmarked == []


def test_env_example_required_marks_match_what_serve_refuses_without() -> None:
    marks = _marks()
    always = {name for name, mark in marks.items() if mark == "required in production"}
    refused = {problem.variable for problem in service_problems(make_settings())}
    assert always <= refused  # unconditional marks are enforced
    assert refused <= {name for name, mark in marks.items() if mark.startswith("required")}


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("DB_PORT", "not-a-port", "DB_PORT should be a whole number (got 'not-a-port')"),
        (
            "AUTH_MODE",
            "magic",
            "AUTH_MODE should be one of 'rotation', 'jwks', 'hs256' or 'strict'",
        ),
        ("LOG_JSON", "maybe", "LOG_JSON should be true or false (got 'maybe')"),
        ("LLM_TEMPERATURE", "5", "LLM_TEMPERATURE should be a number at most 2"),
        ("LOG_LEVEL", "loud", "LOG_LEVEL should be one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
    ],
)
def test_explain_wrong_value_names_the_variable_and_what_it_should_hold(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as caught:
        make_settings()
    assert str(explain(caught.value)).startswith(expected)


def test_service_problems_none_when_production_settings_are_complete() -> None:
    assert service_problems(make_settings(**COMPLETE)) == []


# --- start-up in a subprocess: exit 2, one line, no traceback -----------------------------------
COMPLETE: dict[str, object] = {
    "supabase_url": "http://127.0.0.1:9",
    "supabase_publishable_key": "sb_publishable_test-key",
    "supabase_secret_key": "sb_secret_test-key",
    "anthropic_api_key": "sk-ant-test",
    "billing_attestation_key": "k" * 32,
}
_CLI = str(Path(sys.executable).with_name("chat-stream"))


def run_cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The installed `chat-stream` with only `env` for settings (no .env: cwd is empty)."""
    names = {name.upper() for name in Settings.model_fields}
    clean = {k: v for k, v in os.environ.items() if k not in names}
    return subprocess.run(
        [_CLI, *args],
        cwd=tmp_path,
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _complete_env(**changes: str) -> dict[str, str]:
    env = {k.upper(): str(v) for k, v in COMPLETE.items()} | changes
    return {k: v for k, v in env.items() if v != "<unset>"}


def assert_one_line_exit_2(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.parametrize(
    ("changes", "fragments"),
    [
        ({"SUPABASE_URL": "<unset>"}, ("SUPABASE_URL is not set", "https://<ref>.supabase.co")),
        ({"SUPABASE_URL": "project.example"}, ("SUPABASE_URL should be the project URL",)),
        (
            {"SUPABASE_PUBLISHABLE_KEY": "<unset>"},
            ("SUPABASE_PUBLISHABLE_KEY is not set", "sb_publishable_", "SUPABASE_ANON_KEY"),
        ),
        (
            {"SUPABASE_SECRET_KEY": "<unset>"},
            ("SUPABASE_SECRET_KEY is not set", "sb_secret_", "SUPABASE_SERVICE_ROLE_KEY"),
        ),
        (
            {"SUPABASE_SECRET_KEYS": '{"billing": "sb_secret_x"}'},
            ('SUPABASE_SECRET_KEYS has no "default" entry',),
        ),
        ({"SUPABASE_SECRET_KEYS": "not json"}, ("SUPABASE_SECRET_KEYS should be a JSON object",)),
        (
            {"SUPABASE_SECRET_KEY": "sb_publishable_x"},
            ("SUPABASE_SECRET_KEY holds the publishable key",),
        ),
        (
            {"SUPABASE_PUBLISHABLE_KEY": "sb_secret_x"},
            ("SUPABASE_PUBLISHABLE_KEY holds a secret key",),
        ),
        ({"SUPABASE_JWKS": "[]"}, ("SUPABASE_JWKS should be a JWKS as JSON",)),
        ({"SUPABASE_JWT_SECRET": "short"}, ("SUPABASE_JWT_SECRET", "at least 32 characters")),
        ({"ANTHROPIC_API_KEY": "<unset>"}, ("ANTHROPIC_API_KEY is not set", "LLM_PROVIDER")),
        ({"LLM_PROVIDER": "openai"}, ("OPENAI_API_KEY is not set", "LLM_PROVIDER=openai")),
        ({"AUTH_MODE": "hs256"}, ("SUPABASE_JWT_SECRET", "AUTH_MODE=hs256")),
        ({"BILLING_ATTESTATION_KEY": "<unset>"}, ("BILLING_ATTESTATION_KEY should hold",)),
        ({"BILLING_ATTESTATION_KEY": "short"}, ("BILLING_ATTESTATION_KEY", "at least 32 bytes")),
        ({"JWT_ISSUER": "supabase"}, ("JWT_ISSUER should be the Auth URL",)),
        ({"PORT": "eighty"}, ("PORT should be a whole number",)),
        ({"AUTH_MODE": "jwt"}, ("AUTH_MODE should be one of",)),
    ],
)
def test_serve_wrong_or_missing_setting_exits_2_with_one_line(
    tmp_path: Path, changes: dict[str, str], fragments: tuple[str, ...]
) -> None:
    result = run_cli(tmp_path, "serve", **_complete_env(**changes))
    assert_one_line_exit_2(result, *fragments)
    assert "supabase_key is required" not in result.stderr


def test_migrate_without_database_exits_2_and_starts_no_cluster(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "migrate", LOCAL_STACK_DIR=str(tmp_path / "stack"))
    assert_one_line_exit_2(result, "DATABASE_URL is not set", "--db-url", "--local")
    assert not (tmp_path / "stack").exists()
    assert not (tmp_path / ".local").exists()


def test_migrate_unreachable_database_exits_2_with_one_line(tmp_path: Path) -> None:
    port = free_port()
    result = run_cli(
        tmp_path, "migrate", "--db-url", f"postgresql://postgres:pw@127.0.0.1:{port}/postgres"
    )
    assert_one_line_exit_2(result, f"cannot reach the database at 127.0.0.1:{port}", "--db-url")


def test_migrate_wrong_password_exits_2_with_one_line(
    tmp_path: Path, local_stack: LocalStack
) -> None:
    dsn = local_stack.pg.dsn("postgres", "wrong-password", "postgres")
    result = run_cli(tmp_path, "migrate", DATABASE_URL=dsn)
    assert_one_line_exit_2(
        result, "refused user 'postgres': password authentication failed", "DATABASE_URL"
    )
    assert "wrong-password" not in result.stderr


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (
            {"llm_provider": "anthropic", "llm_model": "m1"},
            [("anthropic", "m1", "ANTHROPIC_API_KEY", True)],
        ),
        (
            {"llm_provider": "openai", "llm_model": "m1", "openai_api_key": "sk-x"},
            [("openai", "m1", "OPENAI_API_KEY", False)],
        ),
        (
            {
                "llm_provider": "anthropic",
                "llm_model": "m1",
                "anthropic_api_key": "k",
                "llm_fallback_provider": "openai-compatible",
            },
            [
                ("anthropic", "m1", "ANTHROPIC_API_KEY", False),
                ("openai-compatible", "m1", "OPENAI_API_KEY", False),
            ],
        ),
        (
            {
                "llm_provider": "openai",
                "llm_model": "m1",
                "llm_fallback_provider": "anthropic",
                "llm_fallback_model": "m2",
            },
            [
                ("openai", "m1", "OPENAI_API_KEY", True),
                ("anthropic", "m2", "ANTHROPIC_API_KEY", True),
            ],
        ),
    ],
)
def test_configured_providers_name_each_key_and_the_fallback_model(
    settings: dict[str, str], expected: list[tuple[str, str, str, bool]]
) -> None:
    configured = configured_providers(make_settings(**settings))
    assert [(p.name, p.model, p.key_setting, p.key_missing) for p in configured] == expected
