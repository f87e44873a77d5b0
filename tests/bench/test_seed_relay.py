"""The seed runs on Deno's own binary from bench/node_modules, never through Node's launcher."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.seed_relay import deno_binary


def binary(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * size)
    return path


def test_deno_binary_prefers_the_platform_package(tmp_path: Path) -> None:
    binary(tmp_path / "node_modules" / "deno" / "deno", 2_000_000)
    platform = binary(tmp_path / "node_modules" / "@deno" / "linux-x64-glibc" / "deno", 2_000_000)
    assert deno_binary(tmp_path) == platform


def test_deno_binary_skips_a_stub_and_says_how_to_install(tmp_path: Path) -> None:
    binary(tmp_path / "node_modules" / "@deno" / "linux-x64-glibc" / "deno", 10)  # not a binary
    with pytest.raises(RuntimeError, match="npm ci --prefix bench"):
        deno_binary(tmp_path)


def test_the_seed_entry_point_is_labelled_a_reconstruction() -> None:
    source = (Path(__file__).parents[2] / "bench" / "seed" / "index.ts").read_text()
    assert "RECONSTRUCTION" in source.splitlines()[0]
    assert "Deno.serve(" in source
    assert "auth.getUser(jwt)" in source
