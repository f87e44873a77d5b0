"""The project under check: its settings, one HTTP client, and how to read its answers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from app.config import Settings


@dataclass
class Project:
    settings: Settings
    http: httpx.Client
    db_url: str
    db_source: str
    migrations_dir: Path

    @property
    def base(self) -> str:
        return self.settings.supabase_url.rstrip("/")

    def headers(self, key: str) -> dict[str, str]:
        return {"apikey": key, "Authorization": f"Bearer {key}"}

    @property
    def service_key(self) -> str:
        return self.settings.supabase_service_role_key.get_secret_value()

    def rpc(self, name: str, args: dict[str, Any]) -> httpx.Response:
        return self.http.post(
            f"{self.base}/rest/v1/rpc/{name}", json=args, headers=self.headers(self.service_key)
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
