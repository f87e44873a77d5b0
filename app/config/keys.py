"""The project's two API keys, whichever names they were set under, and how each is sent.

Supabase's 2026 key model (see README, "Keys"): a project has one `sb_publishable_…` key (low
privilege, replaces `anon`) and one or more `sb_secret_…` keys (bypass RLS, replace
`service_role`). Each key is read from, first match wins:

1. `SUPABASE_PUBLISHABLE_KEY` / `SUPABASE_SECRET_KEY` (the names `@supabase/server` reads);
2. the `"default"` entry of `SUPABASE_PUBLISHABLE_KEYS` / `SUPABASE_SECRET_KEYS` (JSON maps of
   key names, as the Edge runtime sets them);
3. the legacy `SUPABASE_ANON_KEY` / `SUPABASE_SERVICE_ROLE_KEY` (long-lived HS256 JWTs).

How a key travels: in `apikey` only. Supabase refuses a publishable or secret key as
`Authorization: Bearer` unless it equals `apikey`, and its gateway turns the key into a
short-lived JWT itself. Only a legacy key, which *is* a JWT, is also sent as the Bearer, as
before. A key is shown (logs, `chat-stream check`) by its first 6 characters at most.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import SecretStr

from app.config.settings import Settings

KeyKind = Literal["publishable", "secret"]
SHOWN_CHARS = 6  # Supabase's advice: log at most 6 characters of a key
_NAMES: dict[KeyKind, tuple[str, str, str]] = {
    "publishable": ("SUPABASE_PUBLISHABLE_KEY", "SUPABASE_PUBLISHABLE_KEYS", "SUPABASE_ANON_KEY"),
    "secret": ("SUPABASE_SECRET_KEY", "SUPABASE_SECRET_KEYS", "SUPABASE_SERVICE_ROLE_KEY"),
}


@dataclass(frozen=True)
class ApiKey:
    """One API key and the setting it came from ("" when none is set)."""

    kind: KeyKind
    value: SecretStr
    setting: str

    def __bool__(self) -> bool:
        return bool(self.value.get_secret_value())

    @property
    def legacy(self) -> bool:
        """A legacy anon/service_role key: a JWT (three base64url parts, a JSON header)."""
        return is_jwt(self.value.get_secret_value())

    @property
    def shown(self) -> str:
        """At most the first 6 characters, for logs and reports."""
        return shown(self.value.get_secret_value())

    def headers(self) -> dict[str, str]:
        """The headers that send this key: `apikey`, plus the Bearer for a legacy JWT key."""
        key = self.value.get_secret_value()
        if not key:
            return {}
        return {"apikey": key, "Authorization": f"Bearer {key}"} if self.legacy else {"apikey": key}


def publishable_key(settings: Settings) -> ApiKey:
    return _pick(
        "publishable",
        settings.supabase_publishable_key,
        settings.supabase_publishable_keys,
        settings.supabase_anon_key,
    )


def secret_key(settings: Settings) -> ApiKey:
    return _pick(
        "secret",
        settings.supabase_secret_key,
        settings.supabase_secret_keys,
        settings.supabase_service_role_key,
    )


def maps_without_default(settings: Settings) -> list[str]:
    """The key-map settings that are set but have no `"default"` entry (which the service uses)."""
    maps = {
        "SUPABASE_PUBLISHABLE_KEYS": settings.supabase_publishable_keys,
        "SUPABASE_SECRET_KEYS": settings.supabase_secret_keys,
    }
    return [name for name, named in maps.items() if named and "default" not in named]


def is_jwt(value: str) -> bool:
    return value.startswith("eyJ") and value.count(".") == 2


def shown(value: str) -> str:
    return f"{value[:SHOWN_CHARS]}…" if value else "(none)"


def _pick(
    kind: KeyKind, single: SecretStr, named: dict[str, SecretStr], legacy: SecretStr
) -> ApiKey:
    single_name, map_name, legacy_name = _NAMES[kind]
    default = named.get("default", SecretStr(""))
    for value, setting in (
        (single, single_name),
        (default, f'{map_name}["default"]'),
        (legacy, legacy_name),
    ):
        if value.get_secret_value():
            return ApiKey(kind, value, setting)
    return ApiKey(kind, SecretStr(""), "")
