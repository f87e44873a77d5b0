"""Which providers the settings name, and which key and URL settings each one reads.

The one place for that rule: the factory (`app.llm.factory`), the service's start-up and
readiness checks (`app.config.problems`, `app.main`) and `chat-stream check` all ask
`configured_providers`.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import SecretStr

from app.config.settings import ProviderName, Settings


@dataclass(frozen=True)
class ConfiguredProvider:
    """One provider the settings name: its model and the key and URL settings it reads."""

    name: ProviderName
    model: str
    setting: str  # the setting that names it: LLM_PROVIDER or LLM_FALLBACK_PROVIDER
    key_setting: str  # ANTHROPIC_API_KEY or OPENAI_API_KEY (openai-compatible reads it too)
    base_url_setting: str
    api_key: SecretStr
    base_url: str

    @property
    def key_missing(self) -> bool:
        """The provider needs a key and none is set (an openai-compatible server may not)."""
        return self.name != "openai-compatible" and not self.api_key.get_secret_value()


def configured_providers(settings: Settings) -> tuple[ConfiguredProvider, ...]:
    """The primary provider and, when set, the fallback (whose model defaults to `LLM_MODEL`).

    The one place that says which provider reads which key and URL settings: the factory, the
    service's start-up and readiness checks, and `chat-stream check` all ask it.
    """
    named: list[tuple[ProviderName, str, str]] = [
        (settings.llm_provider, settings.llm_model, "LLM_PROVIDER")
    ]
    if settings.llm_fallback_provider:
        model = settings.llm_fallback_model or settings.llm_model
        named.append((settings.llm_fallback_provider, model, "LLM_FALLBACK_PROVIDER"))
    return tuple(_provider(settings, *entry) for entry in named)


def _provider(
    settings: Settings,
    name: ProviderName,
    model: str,
    setting: str,
) -> ConfiguredProvider:
    if name == "anthropic":
        key, url = settings.anthropic_api_key, settings.anthropic_base_url
        return ConfiguredProvider(
            name, model, setting, "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", key, url
        )
    key, url = settings.openai_api_key, settings.openai_base_url
    return ConfiguredProvider(name, model, setting, "OPENAI_API_KEY", "OPENAI_BASE_URL", key, url)
