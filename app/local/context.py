"""What the local stand-ins share: keys, URLs and the database pools (opened by the lifespan)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from psycopg_pool import AsyncConnectionPool

from app.local.keys import LocalKeys
from app.local.postgres import LOCAL_PASSWORD


@dataclass
class StackContext:
    """What the stand-ins share: keys, URLs and the database pools (opened by the lifespan)."""

    keys: LocalKeys
    api_url: str
    db_port: int
    db_name: str = "postgres"
    db_password: str = LOCAL_PASSWORD
    rest_pool: AsyncConnectionPool | None = None
    auth_pool: AsyncConnectionPool | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def auth_url(self) -> str:
        return f"{self.api_url}/auth/v1"

    @property
    def jwt_issuer(self) -> str:
        return self.auth_url

    def dsn(self, user: str, dbname: str | None = None) -> str:
        db = dbname or self.db_name
        return f"postgresql://{user}:{self.db_password}@127.0.0.1:{self.db_port}/{db}"

    @property
    def db_url(self) -> str:
        return self.dsn("postgres")

    def api_keys(self) -> dict[str, str]:
        """apikey value -> the Bearer JWT the gateway forwards for it."""
        anon, service = self.keys.anon_key, self.keys.service_role_key
        return {anon: anon, service: service}

    def status(self) -> dict[str, str]:
        return {
            "api_url": self.api_url,
            "db_url": self.db_url,
            "anon_key": self.keys.anon_key,
            "service_role_key": self.keys.service_role_key,
            "jwks_url": f"{self.auth_url}/.well-known/jwks.json",
            "jwt_secret": self.keys.jwt_secret,
            "llm_anthropic_base_url": f"{self.api_url}/llm",
            "llm_openai_base_url": f"{self.api_url}/llm/v1",
            "functions_url": f"{self.api_url}/functions/v1",
        }
