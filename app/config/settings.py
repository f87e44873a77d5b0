"""`Settings`: one typed object read from the environment (and `.env`) once.

Every field is documented in `.env.example`; keep the two in step (a test checks it).
Nothing here runs at import time: call `get_settings()` or build `Settings(...)` in tests.
"""

from __future__ import annotations

import json
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_SYSTEM_PROMPT = (
    "You are a warm, encouraging personal coach in the CoachMe app. Listen closely, reflect back "
    "what you hear, ask one thoughtful question at a time, and help the person take a small, "
    "concrete next step. Keep answers short and conversational. You are not a therapist or a "
    "doctor: if someone mentions a crisis, self-harm or a medical emergency, respond with care "
    "and encourage them to contact local emergency services or a crisis line right away."
)

ProviderName = Literal["anthropic", "openai", "openai-compatible"]


class Settings(BaseSettings):
    # `KEY=` in the environment or .env (as in .env.example) means "use the default", not "".
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        extra="ignore",
        frozen=True,
    )

    # --- Local stack (the Docker-free Supabase stand-in) -------------------------------------
    local_stack_dir: Path = Path(".local")
    db_port: int = 54322
    api_port: int = 54321
    api_host: str = "127.0.0.1"
    pg_bin: Path | None = None
    # Force the `pgserver` wheel even when the machine has PostgreSQL binaries.
    pg_use_wheel: bool = False

    # --- Database / Supabase project ----------------------------------------------------------
    # Direct PostgreSQL DSN, used by `migrate`, analytics and scripts. Empty: the local stack.
    database_url: str = ""
    supabase_url: str = ""
    # API keys (`app.config.keys` picks one of each): the 2026 names first, as `@supabase/server`
    # and the Edge runtime name them; the JSON maps' "default" entry next; the legacy JWT keys last.
    supabase_publishable_key: SecretStr = SecretStr("")
    supabase_secret_key: SecretStr = SecretStr("")
    supabase_publishable_keys: Annotated[dict[str, SecretStr], NoDecode] = {}
    supabase_secret_keys: Annotated[dict[str, SecretStr], NoDecode] = {}
    supabase_anon_key: SecretStr = SecretStr("")
    supabase_service_role_key: SecretStr = SecretStr("")
    # HMAC key for attested usage (>= 32 bytes; `openssl rand -hex 32`). The same secret must be in
    # the database's private.attestation_keys (`chat-stream migrate` adds it).
    billing_attestation_key: SecretStr = SecretStr("")

    # --- Access-token verification ------------------------------------------------------------
    # rotation (default): asymmetric tokens against the JWKS, HS256 ones with SUPABASE_JWT_SECRET
    # when set, else by asking Auth once; jwks: asymmetric only; hs256: the secret only;
    # strict: ask Supabase Auth (GET /auth/v1/user) every time.
    auth_mode: Literal["rotation", "jwks", "hs256", "strict"] = "rotation"
    # Every mode but strict: a token's session (sign-out) and user (ban) are confirmed with
    # Supabase Auth at most this often, per session (0: never; tokens then live until `exp`).
    session_check_seconds: float = Field(default=60.0, ge=0)
    # The legacy HS256 secret; `JWT_SECRET`, the name Supabase's own services read, also works.
    supabase_jwt_secret: SecretStr = Field(
        default=SecretStr(""),
        validation_alias=AliasChoices("supabase_jwt_secret", "jwt_secret"),
    )
    # Rotation mode without the secret: new HS256 tokens this worker may ask Auth about per
    # second (the bucket holds twice this); past it 503 auth_unavailable, Retry-After.
    auth_confirm_per_second: float = Field(default=20.0, gt=0)
    # The project's JWKS as inline JSON: verify with these keys and never fetch.
    supabase_jwks: str = ""
    jwt_audience: str = "authenticated"
    jwt_issuer: str = ""
    jwt_leeway_seconds: int = 30
    jwks_cache_seconds: int = 600
    jwks_min_refresh_seconds: float = 5.0
    # `chat-stream check` only: a personal access token for the Management API, which says which
    # signing key is standby, in use, previously used or revoked (the public JWKS cannot).
    supabase_access_token: SecretStr = SecretStr("")
    supabase_project_ref: str = ""  # empty: read from SUPABASE_URL (https://<ref>.supabase.co)
    supabase_management_api_url: str = "https://api.supabase.com"

    # --- LLM providers ------------------------------------------------------------------------
    llm_provider: ProviderName = "anthropic"
    llm_model: str = "claude-sonnet-4-6"
    llm_fallback_provider: ProviderName | None = None
    llm_fallback_model: str = ""
    anthropic_api_key: SecretStr = SecretStr("")
    anthropic_base_url: str = "https://api.anthropic.com"
    anthropic_version: str = "2023-06-01"
    openai_api_key: SecretStr = SecretStr("")
    openai_base_url: str = "https://api.openai.com/v1"
    llm_max_tokens: int = Field(default=1024, ge=1)
    llm_temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    # Timeouts (seconds). The availability budget bounds request -> response head (or a clear
    # failure), fallback included; idle bounds the gap between upstream events; total bounds all.
    llm_connect_timeout: float = 2.0
    # Seconds an idle upstream connection stays pooled. Under the 5 s after which uvicorn (vLLM,
    # LiteLLM), Node and Apache close an idle one, so the pool drops it first: a request sent on a
    # connection the server has just closed fails before the upstream ever reads it.
    llm_keepalive_seconds: float = Field(default=4.0, ge=0)
    llm_availability_budget: float = 3.0
    llm_idle_timeout: float = 20.0
    llm_total_timeout: float = 300.0
    # HTTP transport under the provider adapters (the httpx API either way): aiohttp through
    # httpx-aiohttp (cheaper per relayed event: bench/transport.py) or httpx's own.
    llm_http_transport: Literal["httpx", "aiohttp"] = "aiohttp"

    # --- Chat behaviour -----------------------------------------------------------------------
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    max_message_chars: int = Field(default=8000, ge=1, le=32000)  # the database caps at 32,000
    max_body_bytes: int = 128 * 1024  # 8000 emoji sent \u-escaped is ~96 KB
    body_timeout_seconds: float = 10.0
    history_token_budget: int = 6000
    history_max_messages: int = 50
    heartbeat_seconds: float = 15.0
    # Resumable streams: how long a turn keeps streaming after its client left, waiting for a
    # resume (0: cancel at once); how often it then checkpoints for a resume on another worker;
    # how long a finished turn can still be replayed event by event.
    disconnect_grace_seconds: float = Field(default=10.0, ge=0)
    checkpoint_seconds: float = Field(default=0.25, gt=0)
    resume_retention_seconds: float = Field(default=600.0, ge=0)
    # Stopping a turn from another worker: while its client listens, how often (s) a turn asks
    # the database whether its user stopped it (one small read each; 0: only on this worker).
    stop_poll_seconds: float = Field(default=1.0, ge=0)
    # On SIGTERM: how long open turns may still finish before they are ended (stored, `retry`).
    # Keep it under the orchestrator's kill timeout (Kubernetes: 30 s) minus a few seconds.
    shutdown_grace_seconds: float = Field(default=20.0, ge=0)
    # Admission control: a new turn is refused with 503 + Retry-After when this worker's event
    # loop runs this late on average (ms), or when it holds this many open streams (0: no bound).
    admission_max_lag_ms: float = Field(default=250.0, ge=0)
    max_streams_per_worker: int = Field(default=0, ge=0)
    # Requests whose body is still arriving or whose token is not yet verified: bounded apart
    # from the turns (they hold no turn slot), per worker and per client address (the proxy's
    # X-Forwarded-For when FORWARDED_ALLOW_IPS trusts it); 0: no bound.
    max_pending_requests_per_worker: int = Field(default=256, ge=0)
    max_pending_requests_per_client: int = Field(default=8, ge=0)
    # Resume followers on one worker: per turn and per user (429 above; 0: no bound). Each also
    # counts as an open stream for MAX_STREAMS_PER_WORKER.
    max_followers_per_turn: int = Field(default=4, ge=0)
    max_followers_per_user: int = Field(default=8, ge=0)
    cors_origins: Annotated[list[str], NoDecode] = ["*"]
    # Final-write durability: retries with backoff, then a local outbox replayed later.
    finish_retries: int = 3
    finish_backoff_seconds: float = 0.2
    outbox_dir: Path = Path(".local/outbox")
    outbox_replay_seconds: float = 5.0
    db_timeout_seconds: float = 2.5

    # --- Pricing ------------------------------------------------------------------------------
    pricing_overrides_path: Path | None = None
    # Used for models no price table knows: priced, logged as a warning, marked in the row.
    unknown_model_input_usd_per_mtok: Decimal = Decimal("15")
    unknown_model_output_usd_per_mtok: Decimal = Decimal("75")
    # The cost report flags turns whose provider-reported cost (OpenRouter's usage.cost) and
    # our table price differ by more than this many USD.
    provider_cost_tolerance_usd: Decimal = Field(default=Decimal("0.000001"), ge=0)

    # --- Guards (budgets and rate limits); 0 disables a guard ----------------------------------
    daily_budget_usd: Decimal = Decimal("0")
    monthly_budget_usd: Decimal = Decimal("0")
    rate_limit_per_minute: int = 0
    max_concurrent_streams: int = 0
    # Soft budgets (USD per user; 0: off): an alert, never a refusal, when a user's day or month
    # reaches them; alerts also fire at 80% and 100% of the hard caps above. user_limits wins.
    soft_daily_budget_usd: Decimal = Field(default=Decimal("0"), ge=0)
    soft_monthly_budget_usd: Decimal = Field(default=Decimal("0"), ge=0)
    # Where alerts are posted (JSON, signed with ALERT_WEBHOOK_SECRET; empty: rows only, no
    # webhook) and the first retry's delay (doubling up to 5 minutes).
    alert_webhook_url: str = ""
    alert_webhook_secret: SecretStr = SecretStr("")
    alert_retry_seconds: float = Field(default=2.0, gt=0)
    # A turn's lease: renewed while it streams; a dead worker's turn becomes an abandoned,
    # estimated usage row when the lease runs out.
    reservation_ttl_seconds: int = Field(default=120, ge=1)

    # --- Service ------------------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    log_level: str = "INFO"
    log_json: bool = True
    # OpenTelemetry spans (needs the `opentelemetry` extra): the OTLP/HTTP collector's base URL
    # (spans go to <url>/v1/traces). Empty: no spans, nothing of OpenTelemetry imported.
    otel_exporter_otlp_endpoint: str = ""
    otel_service_name: str = "chat-stream"

    # --- Operations: slow clients, metrics across workers -------------------------------------
    # Seconds a connection may take to send a request's headers (then 408 and closed); 0: no limit.
    header_timeout_seconds: float = Field(default=10.0, ge=0)
    # Open connections one worker accepts (uvicorn's limit_concurrency; 503 above); 0: no limit.
    max_connections_per_worker: int = Field(default=2048, ge=0)
    # Folder shared by the workers' Prometheus files (emptied by `serve`). Empty with WORKERS>1:
    # `serve` makes a fresh temporary one.
    prometheus_multiproc_dir: Path | None = None

    # --- Prompt caching -----------------------------------------------------------------------
    # auto: Anthropic's automatic caching (one top-level cache_control) where the API version
    # supports it, else explicit breakpoints; explicit: breakpoints on the system prompt and the
    # last message; off: none. OpenAI caches by itself; it gets a `prompt_cache_key` unless off.
    llm_prompt_cache: Literal["auto", "explicit", "off"] = "auto"

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ValueError("one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return value

    @field_validator("supabase_publishable_keys", "supabase_secret_keys", mode="before")
    @classmethod
    def _named_keys(cls, value: object) -> object:
        """A JSON object of key names to keys, as the Edge runtime sets it."""
        if not isinstance(value, str):
            return value
        if not value.strip():
            return {}
        try:
            named = json.loads(value)
        except ValueError:
            named = None
        if not isinstance(named, dict) or not all(isinstance(v, str) for v in named.values()):
            raise ValueError('a JSON object of key names to keys, e.g. {"default": "sb_…"}')
        return named

    @field_validator("supabase_jwks")
    @classmethod
    def _inline_jwks(cls, value: str) -> str:
        if not value.strip():
            return ""
        try:
            document = json.loads(value)
        except ValueError:
            document = None
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise ValueError('a JWKS as JSON: {"keys": [...]}')
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        """CORS_ORIGINS is a comma-separated list in the environment."""
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


# --- Validation: one line an operator can act on ----------------------------------------------
