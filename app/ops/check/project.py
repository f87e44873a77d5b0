"""The project under check: its settings, one HTTP client, and how to read its answers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from app.config import Settings
from app.config.keys import ApiKey, publishable_key, secret_key


@dataclass
class Project:
    settings: Settings
    http: httpx.Client
    db_url: str
    db_source: str
    migrations_dir: Path
    skip_migrations: bool = False  # the operator chose not to verify them (`--skip-migrations`)

    @property
    def base(self) -> str:
        return self.settings.supabase_url.rstrip("/")

    @property
    def publishable(self) -> ApiKey:
        return publishable_key(self.settings)

    @property
    def secret(self) -> ApiKey:
        return secret_key(self.settings)

    def rpc(self, name: str, args: dict[str, Any]) -> httpx.Response:
        """An RPC with the secret key (in `apikey` only, unless it is a legacy JWT key)."""
        return self.http.post(
            f"{self.base}/rest/v1/rpc/{name}", json=args, headers=self.secret.headers()
        )


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def error_code(response: httpx.Response) -> str:
    return str(_json(response).get("code") or f"HTTP {response.status_code}")


def error_message(response: httpx.Response) -> str:
    body = _json(response)
    error = body.get("error")
    if isinstance(error, dict):  # Anthropic/OpenAI: {"error": {"message": ...}}
        return str(error.get("message", ""))[:160]
    return str(body.get("message") or body.get("msg") or error or response.reason_phrase)[:160]
