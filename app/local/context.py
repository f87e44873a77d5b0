"""What the local stand-ins share: keys, URLs and the database pools (opened by the lifespan)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from psycopg_pool import AsyncConnectionPool

from app.local.keys import LocalKeys
from app.local.postgres import LOCAL_PASSWORD

# Printed for the code that still reads them; `supabase status` tags the same three deprecated.
DEPRECATED_STATUS_KEYS = ("anon_key", "service_role_key", "jwt_secret")


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
        """apikey value -> the Bearer JWT the gateway forwards for it (the CLI's Kong mapping):
        the publishable key stands for the anon JWT, the secret key for the service_role JWT,
        and each legacy JWT key for itself."""
        anon, service = self.keys.anon_key, self.keys.service_role_key
        return {
            self.keys.publishable_key: anon,
            self.keys.secret_key: service,
            anon: anon,
            service: service,
        }

    def secret_api_keys(self) -> frozenset[str]:
        """The `sb_secret_` keys: refused from a browser."""
        return frozenset({self.keys.secret_key})

    def status(self) -> dict[str, Any]:
        """What `chat-stream status` prints: the 2026 keys first, the legacy ones after them and
        listed under `deprecated`, as `supabase status` tags them."""
        return {
            "api_url": self.api_url,
            "db_url": self.db_url,
            "publishable_key": self.keys.publishable_key,
            "secret_key": self.keys.secret_key,
            "jwks_url": f"{self.auth_url}/.well-known/jwks.json",
            "signing_key_id": self.keys.kid,
            "signing_key_algorithm": self.keys.algorithm,
            "anon_key": self.keys.anon_key,
            "service_role_key": self.keys.service_role_key,
            "jwt_secret": self.keys.jwt_secret,
            "deprecated": list(DEPRECATED_STATUS_KEYS),
            "llm_anthropic_base_url": f"{self.api_url}/llm",
            "llm_openai_base_url": f"{self.api_url}/llm/v1",
            "functions_url": f"{self.api_url}/functions/v1",
        }
