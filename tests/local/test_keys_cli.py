"""`chat-stream keys`: without `[auth] signing_keys_path` it says what to set, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.cli import build_parser
from app.local import keys_cli, signing_keys


def _config(tmp_path: Path, auth: str) -> Path:
    path = tmp_path / "supabase" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"[auth]\n{auth}\n")
    return path


def test_keys_without_signing_keys_path_exits_2_and_names_the_setting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = build_parser().parse_args(["keys", "rotate"])
    assert keys_cli.run(args, _config(tmp_path, "jwt_expiry = 3600")) == 2
    assert "signing_keys_path" in capsys.readouterr().err


def test_keys_rotate_creates_the_file_then_revoke_of_the_key_in_use_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, 'signing_keys_path = "./signing_keys.json"')
    parser = build_parser()

    assert keys_cli.run(parser.parse_args(["keys", "rotate", "--algorithm", "RS256"]), config) == 0
    (only,) = signing_keys.read_keys(config.parent / "signing_keys.json")
    assert only["alg"] == "RS256"
    assert keys_cli.run(parser.parse_args(["keys", "revoke", only["kid"]]), config) == 2
    assert "in use" in capsys.readouterr().err
