"""`supabase/config.toml` points only at files that ship (the CLI fails on a missing seed)."""

from __future__ import annotations

import tomllib

from tests.support.database import ROOT


def test_config_toml_seed_paths_exist_and_hold_sql() -> None:
    config = tomllib.loads((ROOT / "supabase" / "config.toml").read_text())
    seed = config["db"]["seed"]
    paths = [ROOT / "supabase" / p for p in seed["sql_paths"]]

    assert seed["enabled"] and paths
    for path in paths:
        assert path.is_file(), path
        assert path.read_text().strip().endswith(";")
