"""`notebooks/cost_analysis.ipynb` runs under papermill on a seeded database, charts and all."""

from __future__ import annotations

import ast
import base64
import json
import os
import shutil
import subprocess
from pathlib import Path

import nbformat
import papermill
import psycopg
import pytest

from app.analytics import charts
from tests.analytics.seeding import SPEC, migrate_and_seed
from tests.analytics.test_charts import png_size
from tests.support.database import ROOT, FreshDatabase

NOTEBOOK = ROOT / "notebooks" / "cost_analysis.ipynb"
CHARTS = {"daily_cost_by_model", "top_users", "cost_per_user_distribution", "month_projection"}


def _project_copy(tmp_path: Path, db_url: str) -> Path:
    """A project tree as a checkout has it: pyproject.toml, `.env`, the notebook in notebooks/,
    and a running local stack's status in the folder `.env` names (relative to the root)."""
    root = tmp_path / "project"
    (root / "notebooks").mkdir(parents=True)
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    shutil.copy(NOTEBOOK, root / "notebooks" / NOTEBOOK.name)
    (root / ".env").write_text("LOCAL_STACK_DIR=.stack\n", encoding="utf-8")
    (root / ".stack").mkdir()
    status = {"pid": os.getpid(), "db_url": db_url}  # a live pid: the stack counts as running
    (root / ".stack" / "status.json").write_text(json.dumps(status), encoding="utf-8")
    return root


@pytest.mark.slow
def test_cost_notebook_run_from_notebooks_folder_finds_the_stack_and_shows_every_chart(
    fresh_db: FreshDatabase, tmp_path: Path, notebook_kernel: str
) -> None:
    migrate_and_seed(fresh_db)
    root = _project_copy(tmp_path, fresh_db.dsn)
    out_dir = tmp_path / "charts"

    papermill.execute_notebook(
        str(root / "notebooks" / NOTEBOOK.name),
        str(tmp_path / "executed.ipynb"),
        parameters={
            "since": SPEC.start.isoformat(),
            "until": SPEC.end.isoformat(),
            "daily_budget": "1",
            "monthly_budget": "4",
            "user": "",
            "out_dir": str(out_dir),
        },
        kernel_name=notebook_kernel,
        cwd=str(root / "notebooks"),  # where Jupyter starts the kernel
        progress_bar=False,
    )  # raises PapermillExecutionError if any cell fails

    executed = nbformat.read(tmp_path / "executed.ipynb", as_version=4)
    outputs = [o for cell in executed.cells for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    images = [base64.b64decode(o["data"]["image/png"]) for o in outputs
              if "image/png" in o.get("data", {})]  # fmt: skip
    assert len(images) == len(CHARTS) + 1  # the report's charts and one drawn by pandas
    assert {p.stem for p in out_dir.glob("*.png")} == CHARTS
    for path in out_dir.glob("*.png"):
        assert png_size(path) == charts.SIZE_PX
    html = "".join(o.get("data", {}).get("text/html", "") for o in outputs)
    assert "seed11-user" in html  # the top spenders table, with the seeded users' emails
    assert "$" in html
    code = "".join(c.source for c in executed.cells if c.cell_type == "code")
    assert ".daily.plot(" in code  # a chart straight from a frame, by pandas
    text = "".join(o.get("text", "") for o in outputs)
    for label in ("Cache saved", "Wasted spend", "Cost per message", "Forecast"):
        assert label in text
    for title in ("net_savings_usd", "share_of_requests", "change_vs_previous", "outcome"):
        assert title in html


@pytest.mark.slow
def test_cost_notebook_run_leaves_no_untracked_files_in_the_checkout(
    fresh_db: FreshDatabase, tmp_path: Path, notebook_kernel: str
) -> None:
    migrate_and_seed(fresh_db)
    root = _project_copy(tmp_path, fresh_db.dsn)
    (root / ".gitignore").write_text(
        (ROOT / ".gitignore").read_text(encoding="utf-8") + ".stack/\n", encoding="utf-8"
    )  # the test's stand-in for .local/
    git = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.test"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "checkout"], check=True)

    papermill.execute_notebook(
        str(root / "notebooks" / NOTEBOOK.name),
        str(tmp_path / "executed.ipynb"),
        parameters={"since": SPEC.start.isoformat(), "until": SPEC.end.isoformat()},
        kernel_name=notebook_kernel,
        cwd=str(root / "notebooks"),
        progress_bar=False,
    )  # fmt: skip

    status = subprocess.run(
        [*git, "status", "--porcelain", "--untracked-files=all"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert status.stdout == ""  # was notebooks/cost-analysis/*.png
    assert {p.stem for p in (root / "out" / "cost_analysis").glob("*.png")} == CHARTS


@pytest.mark.slow
def test_cost_notebook_one_user_by_email_and_one_model(
    fresh_db: FreshDatabase, tmp_path: Path, notebook_kernel: str
) -> None:
    migrate_and_seed(fresh_db)
    root = _project_copy(tmp_path, fresh_db.dsn)
    with psycopg.connect(fresh_db.dsn) as conn:
        row = conn.execute(
            "select u.email from public.usage_logs l join public.users u on u.id = l.user_id"
            " where l.model = 'claude-sonnet-4-5' group by u.email order by count(*) desc limit 1"
        ).fetchone()
    assert row is not None
    email = str(row[0])

    papermill.execute_notebook(
        str(root / "notebooks" / NOTEBOOK.name),
        str(tmp_path / "executed.ipynb"),
        parameters={
            "since": SPEC.start.isoformat(), "until": SPEC.end.isoformat(),
            "user": email.upper(), "model": "claude-sonnet-4-5",
            "out_dir": str(tmp_path / "charts"),
        },
        kernel_name=notebook_kernel,
        cwd=str(root / "notebooks"),
        progress_bar=False,
    )  # fmt: skip

    executed = nbformat.read(tmp_path / "executed.ipynb", as_version=4)
    outputs = [o for cell in executed.cells for o in cell.get("outputs", [])]
    html = "".join(o.get("data", {}).get("text/html", "") for o in outputs)
    assert email in html
    assert html.count("@example.test") == html.count(email)  # nobody else
    assert "claude-sonnet-4-5" in html and "gpt-4o" not in html


def test_cost_notebook_is_thin_parameterised_and_stored_without_outputs() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]

    assert "parameters" in code[0].metadata.get("tags", [])
    for cell in code:
        assert cell.outputs == [] and cell.execution_count is None
        tree = ast.parse(cell.source)
        assert not [
            node
            for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda)
        ]
