"""The REST stand-in reads `[api]` of supabase/config.toml (and `PGRST_DB_TX_END`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.local.rest.settings import TX_END_ENV, load_settings


def test_settings_project_config_exposes_public_with_extensions() -> None:
    settings = load_settings()
    assert settings.schemas == ("public",)
    assert settings.search_path("public") == '"public", "extensions"'


def test_settings_schemas_and_search_path_from_toml(tmp_path: Path) -> None:
    toml = tmp_path / "config.toml"
    toml.write_text('[api]\nschemas = ["api", "My Schema"]\nextra_search_path = ["extensions"]\n')
    settings = load_settings(path=toml)
    assert settings.default_schema == "api"
    assert settings.search_path("My Schema") == '"My Schema", "extensions"'


@pytest.mark.parametrize(
    ("value", "override", "rollback"),
    [
        ("commit", False, False),
        ("commit-allow-override", True, False),
        ("rollback", False, True),
        ("rollback-allow-override", True, True),
    ],
)
def test_settings_tx_end_from_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, value: str, override: bool, rollback: bool
) -> None:
    monkeypatch.setenv(TX_END_ENV, value)
    settings = load_settings(path=tmp_path / "missing.toml")
    assert (settings.tx_override, settings.tx_rollback_default) == (override, rollback)
    assert settings.schemas == ("public",)


def test_settings_postgrest_js_profile_exposes_personal_and_auto_exposes_public() -> None:
    profile = Path(__file__).resolve().parents[3] / "supabase" / "postgrest-js.toml"
    settings = load_settings(path=profile)
    assert settings.schemas == ("public", "personal", "graphql_public")
    assert (settings.max_rows, settings.auto_expose_new_tables) == (1000, True)


def test_settings_auto_expose_is_off_only_when_set_false(tmp_path: Path) -> None:
    """The CLI grants new `public` objects to the API roles unless the key says false; the
    project's config.toml says false."""
    toml = tmp_path / "config.toml"
    toml.write_text("[api]\nmax_rows = 50\n")
    assert load_settings(path=toml).auto_expose_new_tables is True
    assert load_settings(path=toml).max_rows == 50
    assert load_settings().auto_expose_new_tables is False
