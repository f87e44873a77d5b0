"""Provider checks (only with `--provider`): one token from each configured model."""

from __future__ import annotations

from collections.abc import Iterator

import httpx

from app.config import Settings
from app.ops.check.project import Project, error_message
from app.ops.check.result import Result


def check_providers(p: Project) -> Iterator[Result]:
    s = p.settings
    named = [(s.llm_provider, s.llm_model)]
    if s.llm_fallback_provider:
        named.append((s.llm_fallback_provider, s.llm_fallback_model or s.llm_model))
    for provider, model in named:
        label = f"provider {provider}"
        try:
            response = _one_token(p.http, s, provider, model)
        except httpx.HTTPError as exc:
            yield Result(label, "fail", f"cannot reach the provider: {exc!r}")
            continue
        key, base = (
            ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL")
            if provider == "anthropic"
            else ("OPENAI_API_KEY", "OPENAI_BASE_URL")
        )
        if response.status_code == 200:
            yield Result(label, "ok", f"{key} accepted (model {model})")
        elif response.status_code in (401, 403):
            yield Result(label, "fail", f"{key} was refused ({error_message(response)})")
        elif response.status_code == 404 and "model" not in error_message(response).lower():
            yield Result(label, "fail", f"{response.request.url} is not the API: check {base}")
        else:
            yield Result(
                label,
                "fail",
                f"model {model!r} answered HTTP {response.status_code} ({error_message(response)})",
            )


def _one_token(http: httpx.Client, s: Settings, provider: str, model: str) -> httpx.Response:
    messages = [{"role": "user", "content": "ping"}]
    if provider == "anthropic":
        return http.post(
            f"{s.anthropic_base_url.rstrip('/')}/v1/messages",
            json={"model": model, "max_tokens": 1, "messages": messages},
            headers={
                "x-api-key": s.anthropic_api_key.get_secret_value(),
                "anthropic-version": s.anthropic_version,
            },
        )
    return http.post(
        f"{s.openai_base_url.rstrip('/')}/chat/completions",
        json={"model": model, "max_tokens": 1, "messages": messages},
        headers={"Authorization": f"Bearer {s.openai_api_key.get_secret_value()}"},
    )
