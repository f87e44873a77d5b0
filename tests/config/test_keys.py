"""Which API key the service uses, from which setting, and how it is sent."""

from __future__ import annotations

import pytest

from app.config.keys import publishable_key, secret_key
from tests.support.database import make_settings

LEGACY_JWT = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoiYW5vbiJ9.c2lnbmF0dXJl"


@pytest.mark.parametrize(
    ("settings", "value", "setting"),
    [
        pytest.param(
            {
                "supabase_publishable_key": "sb_publishable_one",
                "supabase_publishable_keys": '{"default": "sb_publishable_map"}',
                "supabase_anon_key": LEGACY_JWT,
            },
            "sb_publishable_one",
            "SUPABASE_PUBLISHABLE_KEY",
            id="the single key wins",
        ),
        pytest.param(
            {
                "supabase_publishable_keys": '{"web": "sb_pw", "default": "sb_publishable_map"}',
                "supabase_anon_key": LEGACY_JWT,
            },
            "sb_publishable_map",
            'SUPABASE_PUBLISHABLE_KEYS["default"]',
            id="then the map's default entry",
        ),
        pytest.param(
            {
                "supabase_publishable_keys": '{"web": "sb_publishable_web"}',
                "supabase_anon_key": LEGACY_JWT,
            },
            LEGACY_JWT,
            "SUPABASE_ANON_KEY",
            id="a map without default is not used",
        ),
        pytest.param({}, "", "", id="none set"),
    ],
)
def test_publishable_key_prefers_the_2026_names_then_the_map_then_legacy(
    settings: dict[str, str], value: str, setting: str
) -> None:
    key = publishable_key(make_settings(**settings))

    assert (key.value.get_secret_value(), key.setting) == (value, setting)


def test_secret_key_reads_the_default_entry_of_supabase_secret_keys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "SUPABASE_SECRET_KEYS", '{"default": "sb_secret_abc", "billing": "sb_secret_b"}'
    )
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", LEGACY_JWT)

    key = secret_key(make_settings())

    assert key.value.get_secret_value() == "sb_secret_abc"
    assert "sb_secret_abc" not in repr(make_settings())  # the map's values stay secret


@pytest.mark.parametrize(
    ("value", "headers"),
    [
        pytest.param("sb_secret_abcdef", {"apikey": "sb_secret_abcdef"}, id="sb key: apikey only"),
        pytest.param(
            LEGACY_JWT,
            {"apikey": LEGACY_JWT, "Authorization": f"Bearer {LEGACY_JWT}"},
            id="legacy JWT key: also the Bearer",
        ),
        pytest.param("", {}, id="no key: nothing"),
    ],
)
def test_api_key_headers_send_a_2026_key_in_apikey_only(
    value: str, headers: dict[str, str]
) -> None:
    assert secret_key(make_settings(supabase_secret_key=value)).headers() == headers


def test_api_key_is_shown_by_six_characters_at_most() -> None:
    key = secret_key(make_settings(supabase_secret_key="sb_secret_N7UND0UgjKTVK-Uodkm0Hg_xSvEMPvz"))

    assert key.shown == "sb_sec…"
    assert "sb_secret_N7UND0UgjKTVK" not in repr(key) + str(key)
