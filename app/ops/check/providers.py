"""Provider checks (only with `--provider`): one token from each configured model."""

from __future__ import annotations

from collections.abc import Iterator

import httpx

from app.config import ConfiguredProvider, Settings, configured_providers
from app.ops.check.project import Project, error_message
from app.ops.check.result import Result


def check_providers(p: Project) -> Iterator[Result]:
    for provider in configured_providers(p.settings):
        label = f"provider {provider.name}"
        model, key = provider.model, provider.key_setting
        try:
            response = _one_token(p.http, p.settings, provider)
        except httpx.HTTPError as exc:
            yield Result(label, "fail", f"cannot reach the provider: {exc!r}")
            continue
        if response.status_code == 200:
            yield Result(label, "ok", f"{key} accepted (model {model})")
        elif response.status_code in (401, 403):
            yield Result(label, "fail", f"{key} was refused ({error_message(response)})")
        elif response.status_code == 404 and "model" not in error_message(response).lower():
            yield Result(
                label,
                "fail",
                f"{response.request.url} is not the API: check {provider.base_url_setting}",
            )
        else:
            yield Result(
                label,
                "fail",
                f"model {model!r} answered HTTP {response.status_code} ({error_message(response)})",
            )


def _one_token(http: httpx.Client, s: Settings, provider: ConfiguredProvider) -> httpx.Response:
    messages = [{"role": "user", "content": "ping"}]
    body = {"model": provider.model, "max_tokens": 1, "messages": messages}
    base, key = provider.base_url.rstrip("/"), provider.api_key.get_secret_value()
    if provider.name == "anthropic":
        return http.post(
            f"{base}/v1/messages",
            json=body,
            headers={"x-api-key": key, "anthropic-version": s.anthropic_version},
        )
    return http.post(
        f"{base}/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
    )
