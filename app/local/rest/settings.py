"""The REST stand-in's settings, read from `[api]` in `supabase/config.toml` like Supabase does.

`schemas` are the exposed schemas (the first is the default; others are chosen with
`Accept-Profile` / `Content-Profile`), `extra_search_path` follows the request's schema in
`search_path`, `max_rows` caps every level of a read, and `auto_expose_new_tables` (unset is
true, as in the CLI) says whether new objects in `public` are granted to the API roles.
`PGRST_DB_TX_END` chooses whether `Prefer: tx=…` may override the end of a transaction
(PostgREST's `db-tx-end`). A stack can
override any of them with `ctx.extra["rest"]` (tests serve extra schemas that way).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CONFIG_TOML = Path(__file__).resolve().parents[3] / "supabase" / "config.toml"
TX_END_ENV = "PGRST_DB_TX_END"
PLAN_ENV = "PGRST_DB_PLAN_ENABLED"
# The local stack is a test/dev profile: `Prefer: tx=rollback` is honoured by default.
DEFAULT_TX_END = "commit-allow-override"


@dataclass(frozen=True)
class RestSettings:
    schemas: tuple[str, ...] = ("public",)
    extra_search_path: tuple[str, ...] = ("public", "extensions")
    tx_end: str = DEFAULT_TX_END
    plan_enabled: bool = False  # PostgREST's `db-plan-enabled`; off, as on Supabase
    max_rows: int = 1000
    auto_expose_new_tables: bool = True

    @property
    def default_schema(self) -> str:
        return self.schemas[0]

    @property
    def tx_override(self) -> bool:
        return self.tx_end.endswith("-allow-override")

    @property
    def tx_rollback_default(self) -> bool:
        return self.tx_end.startswith("rollback")

    def search_path(self, schema: str) -> str:
        """`"schema", "extra"…` without repeats, each name quoted as PostgREST sends it."""
        names = list(dict.fromkeys((schema, *self.extra_search_path)))
        return ", ".join('"' + n.replace('"', '""') + '"' for n in names)


def load_settings(
    overrides: Mapping[str, Any] | None = None, path: Path = CONFIG_TOML
) -> RestSettings:
    api: dict[str, Any] = {}
    try:
        with path.open("rb") as f:
            api = dict(tomllib.load(f).get("api", {}))
    except (OSError, tomllib.TOMLDecodeError):
        api = {}
    api.update(overrides or {})
    schemas = tuple(str(s) for s in api.get("schemas") or ("public",))
    extra = tuple(str(s) for s in api.get("extra_search_path") or ("public", "extensions"))
    tx_end = str(api.get("tx_end") or os.environ.get(TX_END_ENV) or DEFAULT_TX_END)
    plan = api.get("plan_enabled", os.environ.get(PLAN_ENV, ""))
    enabled = plan is True or str(plan).strip().lower() in ("1", "true", "on")
    return RestSettings(
        schemas,
        extra,
        tx_end.strip().lower(),
        enabled,
        int(api.get("max_rows") or 1000),
        api.get("auto_expose_new_tables", True) is not False,
    )
