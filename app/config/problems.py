"""What a bad configuration looks like to an operator: `ConfigError`, one line per setting.

`explain` names pydantic's first validation error by its environment variable;
`service_problems` lists what `chat-stream serve` cannot run without.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import ValidationError

from app.config.keys import maps_without_default, publishable_key, secret_key
from app.config.providers import configured_providers
from app.config.settings import Settings, get_settings


class ConfigError(Exception):
    """One setting is missing or wrong; `str()` is the line shown to the operator."""

    def __init__(self, variable: str, problem: str) -> None:
        self.variable = variable
        super().__init__(f"{variable} {problem}")


_EXPECTED = {
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_parsing": "a number",
    "decimal_parsing": "a decimal number",
    "bool_parsing": "true or false",
    "path_type": "a file system path",
    "list_type": "a comma-separated list",
}


def explain(exc: ValidationError) -> ConfigError:
    """The first error of a `Settings` validation, named by its environment variable."""
    error = exc.errors()[0]
    variable = str(error["loc"][0]).upper() if error["loc"] else "a setting"
    ctx = error.get("ctx") or {}
    kind = error["type"]
    if kind == "literal_error":
        expected = f"one of {ctx.get('expected')}"
    elif kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        bound = next(iter(ctx.values()), "?")
        words = {
            "greater_than_equal": "at least",
            "greater_than": "more than",
            "less_than_equal": "at most",
            "less_than": "less than",
        }
        expected = f"a number {words[kind]} {bound}"
    elif kind == "value_error":
        expected = str(error["msg"]).removeprefix("Value error, ")
    else:
        expected = _EXPECTED.get(kind, str(error["msg"]).lower())
    got = error.get("input")
    shown = f" (got {got!r})" if isinstance(got, str | int | float) else ""
    return ConfigError(variable, f"should be {expected}{shown}")


def load_settings() -> Settings:
    """`get_settings()`, with a wrong value reported as a `ConfigError` instead of pydantic's."""
    try:
        return get_settings()
    except ValidationError as exc:
        raise explain(exc) from None


_PROJECT_URL = "the project URL, e.g. https://<ref>.supabase.co"


def service_problems(settings: Settings) -> list[ConfigError]:
    """What `chat-stream serve` cannot run without, in the order an operator would fix it."""
    problems: list[ConfigError] = []
    url = settings.supabase_url
    if not url:
        problems.append(ConfigError("SUPABASE_URL", f"is not set: it should hold {_PROJECT_URL}"))
    elif not _is_http_url(url):
        problems.append(ConfigError("SUPABASE_URL", f"should be {_PROJECT_URL} (got {url!r})"))
    problems += _key_problems(settings)
    if len(settings.billing_attestation_key.get_secret_value().encode()) < 32:
        problems.append(
            ConfigError(
                "BILLING_ATTESTATION_KEY",
                "should hold the HMAC key (at least 32 bytes) the database holds in "
                "private.attestation_keys",
            )
        )
    jwt_secret = settings.supabase_jwt_secret.get_secret_value()
    if (settings.auth_mode == "hs256" or jwt_secret) and len(jwt_secret) < 32:
        problems.append(
            ConfigError(
                "SUPABASE_JWT_SECRET",
                "should hold the project's legacy JWT secret (at least 32 characters): "
                "AUTH_MODE=hs256 needs it, AUTH_MODE=rotation verifies HS256 tokens with it",
            )
        )
    if settings.jwt_issuer and not _is_http_url(settings.jwt_issuer):
        problems.append(
            ConfigError(
                "JWT_ISSUER",
                "should be the Auth URL, e.g. https://<ref>.supabase.co/auth/v1 "
                f"(got {settings.jwt_issuer!r})",
            )
        )
    for provider in configured_providers(settings):
        if provider.key_missing:
            problems.append(
                ConfigError(
                    provider.key_setting,
                    f"is not set: {provider.setting}={provider.name} needs the provider's API key",
                )
            )
    if settings.alert_webhook_url and not settings.alert_webhook_secret.get_secret_value():
        problems.append(
            ConfigError("ALERT_WEBHOOK_SECRET", "is not set: ALERT_WEBHOOK_URL needs it to sign")
        )
    if settings.alert_webhook_url and not secret_key(settings):
        problems.append(
            ConfigError(
                "SUPABASE_SECRET_KEY",
                "is not set: ALERT_WEBHOOK_URL needs it (delivery claims alerts as the service)",
            )
        )
    return problems


def _key_problems(settings: Settings) -> list[ConfigError]:
    problems = [
        ConfigError(name, 'has no "default" entry: the service uses the key named "default"')
        for name in maps_without_default(settings)
    ]
    publishable, secret = publishable_key(settings), secret_key(settings)
    if not publishable:
        problems.append(
            ConfigError(
                "SUPABASE_PUBLISHABLE_KEY",
                "is not set: it should hold the project's publishable key (sb_publishable_…; "
                "the legacy SUPABASE_ANON_KEY is also accepted)",
            )
        )
    elif publishable.value.get_secret_value().startswith("sb_secret_"):
        problems.append(
            ConfigError(publishable.setting, "holds a secret key: it must be the publishable key")
        )
    if not secret:
        problems.append(
            ConfigError(
                "SUPABASE_SECRET_KEY",
                "is not set: it should hold a secret key of the project (sb_secret_…; the legacy "
                "SUPABASE_SERVICE_ROLE_KEY is also accepted), which replays the outbox",
            )
        )
    elif secret.value.get_secret_value().startswith("sb_publishable_"):
        problems.append(
            ConfigError(secret.setting, "holds the publishable key: it must be a secret key")
        )
    return problems


def require_service(settings: Settings) -> None:
    """Raise the first of `service_problems()`, if any."""
    problems = service_problems(settings)
    if problems:
        raise problems[0]


def _is_http_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname)
