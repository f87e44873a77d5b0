"""Configuration: `Settings` (`settings`) and what is wrong with them (`problems`).

Every field is documented in `.env.example`; keep the two in step (a test checks it).
Nothing here runs at import time: call `get_settings()` or build `Settings(...)` in tests.
"""

from app.config.problems import (
    ConfigError,
    explain,
    load_settings,
    require_service,
    service_problems,
)
from app.config.providers import ConfiguredProvider, configured_providers
from app.config.settings import DEFAULT_SYSTEM_PROMPT, ProviderName, Settings, get_settings

__all__ = [
    "DEFAULT_SYSTEM_PROMPT",
    "ConfigError",
    "ConfiguredProvider",
    "ProviderName",
    "Settings",
    "configured_providers",
    "explain",
    "get_settings",
    "load_settings",
    "require_service",
    "service_problems",
]
