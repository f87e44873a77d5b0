"""The processes under test, each started separately: the LLM stand-in (`python -m
app.local.llm.api`), the local stack (`chat-stream dev` in a temporary folder: embedded PostgreSQL,
Auth and PostgREST stand-ins) and the service (`chat-stream serve --workers N`), all on 127.0.0.1.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from app.local.keys import LocalKeys
from app.local.postgres import LOCAL_PASSWORD, SUPERUSER, free_port
from bench.procs import ROOT, Proc, Procs, clean_env, python

STANDIN_KEY = "bench-key"
HIGH_CAP = Decimal("1000000")  # guards on, as production runs, but never the limit here


@dataclass
class Guards:
    """The guard settings the service runs with (all on, set high, by default)."""

    daily_budget_usd: Decimal = HIGH_CAP
    monthly_budget_usd: Decimal = HIGH_CAP
    rate_limit_per_minute: int = 1_000_000
    max_concurrent_streams: int = 1000

    def env(self) -> dict[str, str]:
        return {
            "DAILY_BUDGET_USD": str(self.daily_budget_usd),
            "MONTHLY_BUDGET_USD": str(self.monthly_budget_usd),
            "RATE_LIMIT_PER_MINUTE": str(self.rate_limit_per_minute),
            "MAX_CONCURRENT_STREAMS": str(self.max_concurrent_streams),
        }


@dataclass
class Service:
    proc: Proc
    url: str
    workers: int

    @property
    def endpoint(self) -> str:
        return f"{self.url}/functions/v1/chat-stream"


class Stack:
    """Stand-in + local stack, started once per run; services come and go on top of them."""

    def __init__(self, procs: Procs, run_dir: Path) -> None:
        self.procs = procs
        self.run_dir = run_dir
        self.standin_url = ""
        self.api_url = ""
        self.status: dict[str, Any] = {}
        self.keys: LocalKeys | None = None
        self.db_port = 0
        self.standin: Proc | None = None
        self.dev: Proc | None = None
        self.service_prefix: tuple[str, ...] = ()  # e.g. ("taskset", "-c", "0"): pin the service

    def start(self, timeout: float = 90.0) -> None:
        port = free_port()
        self.standin = self.procs.start(
            "standin",
            [python(), "-m", "app.local.llm.api", "--port", str(port), "--log-level", "warning"],
            clean_env(),
        )
        self.standin_url = f"http://127.0.0.1:{port}"
        stack_dir = self.run_dir / "stack"
        api_port, self.db_port = free_port(), free_port()
        self.dev = self.procs.start(
            "stack",
            [python(), "-m", "app.cli", "dev", "--quiet"],
            clean_env(
                LOCAL_STACK_DIR=str(stack_dir),
                API_PORT=str(api_port),
                DB_PORT=str(self.db_port),
                LOG_LEVEL="WARNING",
                OUTBOX_DIR=str(self.run_dir / "stack-outbox"),
            ),
        )
        self.api_url = f"http://127.0.0.1:{api_port}"
        self.standin.wait_http(f"{self.standin_url}/_ledger?since={time.monotonic()}", timeout)
        self.dev.wait_http(f"{self.api_url}/health", timeout)
        self.status = json.loads((stack_dir / "status.json").read_text())
        self.keys = LocalKeys.load_or_create(stack_dir)

    def _keys(self) -> LocalKeys:
        if self.keys is None:
            raise RuntimeError("the stack is not started")
        return self.keys

    @property
    def superuser_dsn(self) -> str:
        return f"postgresql://{SUPERUSER}:{LOCAL_PASSWORD}@127.0.0.1:{self.db_port}/postgres"

    @property
    def issuer(self) -> str:
        return f"{self.api_url}/auth/v1"

    def service_env(self, guards: Guards, log_level: str, **extra: str) -> dict[str, str]:
        if self.keys is None:
            raise RuntimeError("the local stack is not started")
        return clean_env(
            SUPABASE_URL=self.api_url,
            SUPABASE_ANON_KEY=self.status["anon_key"],
            SUPABASE_SERVICE_ROLE_KEY=self.status["service_role_key"],
            BILLING_ATTESTATION_KEY=self._keys().attestation_key.decode(),
            AUTH_MODE="jwks",
            # The benchmarks and the load proof measure a disconnect that stops the upstream.
            DISCONNECT_GRACE_SECONDS="0",
            JWT_ISSUER=self.issuer,
            LLM_PROVIDER="anthropic",
            ANTHROPIC_BASE_URL=self.standin_url,
            ANTHROPIC_API_KEY=STANDIN_KEY,
            LOG_LEVEL=log_level,
            **guards.env(),
            **extra,
        )

    def start_service(
        self,
        workers: int,
        guards: Guards,
        *,
        log_level: str = "INFO",
        timeout: float = 60.0,
        code: Path = ROOT,
        name: str = "service",
        env: Mapping[str, str] | None = None,
    ) -> Service:
        """`chat-stream serve` from the checkout at `code` (another copy of the code: A/B), with
        `env` added to its settings."""
        port = free_port()
        outbox = str(self.run_dir / f"outbox-{port}")
        settings = self.service_env(guards, log_level, OUTBOX_DIR=outbox, **(env or {}))
        proc = self.procs.start(
            f"{name}-w{workers}-{port}",
            [*self.service_prefix, python(), "-m", "app.cli", "serve", "--port", str(port)]
            + ["--workers", str(workers)],
            settings,
            cwd=code,
        )
        url = f"http://127.0.0.1:{port}"
        proc.wait_http(f"{url}/healthz", timeout)
        if workers > 1:  # /healthz answers once the first worker is up: wait for all of them
            deadline = time.monotonic() + timeout
            while len(proc.tree()) < workers + 1 and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(1.0)
        return Service(proc, url, workers)
