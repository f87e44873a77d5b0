"""README's five-line Python example runs as written, on a seeded database named by the settings."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import matplotlib
import pytest
from matplotlib import pyplot as plt

from tests.support.database import ROOT, FreshDatabase


def _example() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(r"From Python \(one call.*?```python\n(.*?)```", readme, re.S)
    assert found, "README lost its Python example"
    return found.group(1)


def test_readme_python_example_is_five_lines_and_runs_against_the_settings_database(
    seeded_db: FreshDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    code = _example()
    root = tmp_path / "project"
    root.mkdir()
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    monkeypatch.chdir(root)
    monkeypatch.setenv("DATABASE_URL", seeded_db.dsn)
    matplotlib.use("Agg")

    exec(compile(code, "README.md", "exec"), {})  # noqa: S102 - our own README
    plt.close("all")

    assert len([line for line in code.splitlines() if line.strip()]) == 5
    assert "complete" in capsys.readouterr().out
    assert (root / "out" / "report" / "report.html").is_file()
    assert (root / "out" / "report" / "daily.csv").is_file()
