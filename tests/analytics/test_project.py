"""`app.analytics.project`: the project root, `.env` and the stack folder from any folder inside."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.analytics import project
from tests.support.database import ROOT


def _tree(tmp_path: Path, name: str = project.PROJECT_NAME) -> Path:
    root = tmp_path / "checkout"
    (root / "notebooks" / "deep").mkdir(parents=True)
    (root / "pyproject.toml").write_text(f'[project]\nname = "{name}"\n', encoding="utf-8")
    return root


def test_find_root_from_a_subfolder_walks_up_to_pyproject(tmp_path: Path) -> None:
    root = _tree(tmp_path)

    assert project.find_root(root / "notebooks" / "deep") == root.resolve()


def test_find_root_other_projects_pyproject_is_skipped(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    inner = root / "notebooks" / "vendored"
    inner.mkdir()
    (inner / "pyproject.toml").write_text('[project]\nname = "other"\n', encoding="utf-8")

    assert project.find_root(inner) == root.resolve()


def test_find_root_outside_any_checkout_falls_back_to_the_package_checkout(
    tmp_path: Path,
) -> None:
    assert project.find_root(tmp_path) == ROOT


def test_settings_reads_env_from_root_and_anchors_the_stack_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _tree(tmp_path)
    (root / ".env").write_text("LOCAL_STACK_DIR=.stack\nMONTHLY_BUDGET_USD=12.5\n", "utf-8")
    for name in ("LOCAL_STACK_DIR", "MONTHLY_BUDGET_USD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(root / "notebooks")

    found = project.settings()

    assert found.local_stack_dir == root.resolve() / ".stack"
    assert str(found.monthly_budget_usd) == "12.5"
    assert project.migrations_dir() == root.resolve() / "supabase" / "migrations"
