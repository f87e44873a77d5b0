"""`notebooks/migration_validation.ipynb` runs under papermill and shows every check."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import papermill
import pytest
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

from app.advisor import CHECK_NAMES
from tests.advisor.cases import migrations_with, notes_table
from tests.support.database import MIGRATIONS, ROOT, FreshDatabase

NOTEBOOK = ROOT / "notebooks" / "migration_validation.ipynb"


def _run(kernel: str, out: Path, **parameters: object) -> str:
    papermill.execute_notebook(
        str(NOTEBOOK),
        str(out),
        parameters=parameters,
        kernel_name=kernel,
        cwd=str(NOTEBOOK.parent),
        progress_bar=False,
    )
    executed = nbformat.read(out, as_version=4)
    texts = []
    for cell in executed.cells:
        for output in cell.get("outputs", []):
            texts.append(output.get("text", ""))
            texts.append(output.get("data", {}).get("text/plain", ""))
    return "\n".join(texts)


@pytest.mark.slow
def test_validation_notebook_project_migrations_show_every_check_passing(
    fresh_db: FreshDatabase, tmp_path: Path, notebook_kernel: str
) -> None:
    text = _run(
        notebook_kernel,
        tmp_path / "out.ipynb",
        migrations_dir=str(MIGRATIONS),
        db_url=fresh_db.dsn,
        apply=True,
    )

    assert "every check passes" in text
    for name in CHECK_NAMES:
        assert name in text
    assert "FAIL" not in text
    assert "public.messages" in text  # the matrix's note on what it probed


@pytest.mark.slow
def test_validation_notebook_bad_migration_shows_the_failing_check(
    fresh_db: FreshDatabase, tmp_path: Path, notebook_kernel: str
) -> None:
    folder = migrations_with(tmp_path, notes_table(index=""))

    text = _run(
        notebook_kernel,
        tmp_path / "out.ipynb",
        migrations_dir=str(folder),
        db_url=fresh_db.dsn,
        apply=True,
    )

    assert "some checks FAIL" in text
    assert "unindexed_foreign_keys [FAIL]" in text
    assert "public.notes: foreign key notes_user_id_fkey (user_id) has no index" in text


@pytest.mark.slow
def test_validation_notebook_run_from_a_checkouts_notebooks_folder_checks_its_migrations(
    fresh_db: FreshDatabase, tmp_path: Path, notebook_kernel: str
) -> None:
    # A checkout elsewhere (the kernel starts in its notebooks/): its migrations, not the ones
    # next to the imported package, are the project's.
    root = tmp_path / "checkout"
    (root / "notebooks").mkdir(parents=True)
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    shutil.copy(NOTEBOOK, root / "notebooks" / NOTEBOOK.name)
    migrations_with(root / "supabase", notes_table(index=""))
    papermill.execute_notebook(
        str(root / "notebooks" / NOTEBOOK.name),
        str(tmp_path / "out.ipynb"),
        parameters={"db_url": fresh_db.dsn, "apply": True},
        kernel_name=notebook_kernel,
        cwd=str(root / "notebooks"),
        progress_bar=False,
    )
    executed = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    text = "\n".join(
        o.get("text", "") + o.get("data", {}).get("text/plain", "")
        for cell in executed.cells
        for o in cell.get("outputs", [])
    )

    assert "some checks FAIL" in text
    assert "public.notes: foreign key notes_user_id_fkey (user_id) has no index" in text


def test_validation_notebook_is_thin_parameterised_and_stored_without_outputs() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
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
