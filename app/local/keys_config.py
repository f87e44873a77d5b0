"""Which keys the local stack uses, from `[auth]` of `supabase/config.toml`, as the CLI reads it:
`signing_keys_path` (relative to the `supabase/` folder), `publishable_key` and `secret_key` (the
CLI's fixed local values when absent; `env(NAME)` reads the environment, as the CLI allows)."""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.local.auth.config import CONFIG_PATH
from app.local.keys import LocalKeys

_ENV = re.compile(r"^env\((\w+)\)$")


@dataclass(frozen=True)
class KeysConfig:
    signing_keys_path: Path | None = None
    publishable_key: str | None = None
    secret_key: str | None = None


def load_keys_config(path: Path = CONFIG_PATH) -> KeysConfig:
    try:
        data = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        return KeysConfig()
    auth: dict[str, Any] = data.get("auth") or {}
    raw_path = _value(auth.get("signing_keys_path"))
    signing = None
    if raw_path:
        signing = Path(raw_path)
        if not signing.is_absolute():
            signing = (Path(path).parent / signing).resolve()
    return KeysConfig(signing, _value(auth.get("publishable_key")), _value(auth.get("secret_key")))


def stack_keys(stack_dir: Path, config: KeysConfig) -> LocalKeys:
    """The per-stack keys of `stack_dir`, with the configured API keys and signing keys."""
    keys = LocalKeys.load_or_create(stack_dir).with_api_keys(
        config.publishable_key, config.secret_key
    )
    if config.signing_keys_path is not None:
        keys = keys.with_signing_keys(config.signing_keys_path)
    return keys


def _value(raw: object) -> str | None:
    if not isinstance(raw, str) or not raw:
        return None
    match = _ENV.match(raw.strip())
    if match is None:
        return raw
    return os.environ.get(match.group(1)) or None
