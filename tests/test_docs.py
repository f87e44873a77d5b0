"""The docs say what the code is: every module, function and file they name exists.

Read: README.md, ARCHITECTURE.md, docs/*.md, and the docstrings and comments of every Python file
in the repo (CHANGELOG.md is history, left out). Resolved:

- dotted names such as `app.ops.logs.configure_logging` (also `bench.…`, `tests.…`): the longest
  prefix that is a module, then attributes on it; `app.analytics.load_*` needs one match; a name
  on an ASGI app object (`app.state`) is not a module;
- paths `dir/file.ext` that look like repo paths: relative to the repo root, to the directory
  of the file that names them or any of its parents, or to `app/` (`api/body.py`);
- the Layout trees of README.md and docs/design.md: every name a folder's line lists after its
  colon is a module, package or file in that folder;
- the migrations table of ARCHITECTURE.md: it lists every migration.
"""

from __future__ import annotations

import ast
import importlib
import io
import re
import tokenize
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest
from fastapi import FastAPI

from tests.support.database import ROOT

DOCS = [ROOT / "README.md", ROOT / "ARCHITECTURE.md", *sorted((ROOT / "docs").glob("*.md"))]
PYTHON = sorted(
    p
    for top in ("app", "bench", "scripts", "tests")
    for p in (ROOT / top).rglob("*.py")
    if "__pycache__" not in p.parts
)
FILE_EXTENSIONS = (
    "py|md|toml|sql|json|ipynb|txt|cfg|ini|sh|yml|yaml|example|html|csv|png|lock|jsonl"
)
_DOTTED = re.compile(r"(?<![\w./-])((?:app|bench|tests)(?:\.[A-Za-z_]\w*)+)(\*?)")
_PATH = re.compile(rf"(?<![\w./:-])((?:\.?[\w-]+/)+[\w.-]*\w\.(?:{FILE_EXTENSIONS}))(?![\w/])")
_IS_FILE = re.compile(rf"\.(?:{FILE_EXTENSIONS})$")
TOP_LEVEL = {p.name for p in ROOT.iterdir()}
_APP_OBJECT = set(dir(FastAPI)) | {"state"}


# --- where the text comes from ------------------------------------------------------------------
def python_text(path: Path) -> Iterator[tuple[int, str]]:
    """(line, text) of every docstring and comment."""
    source = path.read_text()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                if isinstance(body[0].value.value, str):
                    yield body[0].lineno, body[0].value.value
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            yield token.start[0], token.string


def doc_text(path: Path) -> Iterator[tuple[int, str]]:
    yield from enumerate(path.read_text().splitlines(), 1)


def texts() -> Iterator[tuple[Path, int, str]]:
    for path in DOCS:
        for number, text in doc_text(path):
            yield path, number, text
    for path in PYTHON:
        for number, text in python_text(path):
            yield path, number, text


# --- resolving ----------------------------------------------------------------------------------
@cache
def _module(name: str) -> object | None:
    base = ROOT.joinpath(*name.split("."))
    if not (base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()):
        return None
    return importlib.import_module(name)


def dotted_resolves(name: str, glob: bool) -> bool:
    parts = name.split(".")
    if parts[0] == "app" and parts[1] in _APP_OBJECT:  # `app.state.x`: a FastAPI app, not ours
        return True
    for cut in range(len(parts), 0, -1):
        module = _module(".".join(parts[:cut]))
        if module is None:
            continue
        target: object = module
        rest = parts[cut:]
        for index, attr in enumerate(rest):
            if glob and index == len(rest) - 1:
                return any(n.startswith(attr) for n in dir(target))
            if not hasattr(target, attr):
                return False
            target = getattr(target, attr)
        return not glob or not rest
    return False


def path_resolves(text: str, named_in: Path) -> bool:
    bases = [ROOT, ROOT / "app", *[d for d in named_in.parents if d.is_relative_to(ROOT)]]
    return any((base / text).exists() for base in bases)


# Git-ignored folders that runs write into: a path there names an output, not a repo file.
OUTPUT_FOLDERS = {".local", ".venv", "out", "node_modules"}


def looks_like_repo_path(text: str, named_in: Path) -> bool:
    """Its first folder is one of the repo's (or of a folder above the file that names it)."""
    first = text.split("/")[0]
    if first in OUTPUT_FOLDERS:
        return False
    folders = [ROOT, ROOT / "app", *[d for d in named_in.parents if d.is_relative_to(ROOT)]]
    return any((folder / first).is_dir() for folder in folders) or first in TOP_LEVEL


def unresolved_in(path: Path, number: int, text: str) -> Iterator[str]:
    where = f"{path.relative_to(ROOT)}:{number}"
    for match in _DOTTED.finditer(text):
        name, glob = match.group(1), bool(match.group(2))
        if _IS_FILE.search(name):  # `app.py`, a file name
            continue
        if not dotted_resolves(name, glob):
            yield f"{where}: {name}{match.group(2)}"
    for match in _PATH.finditer(text):
        name = match.group(1)
        if looks_like_repo_path(name, path) and not path_resolves(name, path):
            yield f"{where}: {name}"


def test_docs_every_module_function_and_file_they_name_exists() -> None:
    unresolved = [
        problem for path, number, text in texts() for problem in unresolved_in(path, number, text)
    ]
    assert unresolved == []


# --- the Layout trees ---------------------------------------------------------------------------
# A line is `name  description`; a folder's (`name/`) description may list what it holds as
# `label: a, b (a note), c/, …`, prose in parentheses or after a `;`. Continuation lines start
# under the description; a bare indented list (`postgres, cluster, …`) is held by the folder above.
_ENTRY = re.compile(r"^(?P<indent> *)(?P<name>\S+(?: \S+/)*)(?P<gap>\s{2,})(?P<text>.*)$")
_BARE_LIST = re.compile(r"^(?P<indent> +)(?P<text>[a-z_][\w, ]*)$")
_MODULE_NAME = re.compile(r"^[a-z_][a-z0-9_]*(?:\.[a-z0-9]+)?/?$")


def layout_block(path: Path, heading: str) -> list[str]:
    text = path.read_text()
    section = text[text.index(heading) :]
    start = section.index("```\n") + 4
    return section[start : section.index("```", start)].splitlines()


def listed_names(text: str) -> list[str]:
    """`the service: main (composition root), cli, config; prose` → main, cli, config."""
    while re.search(r"\([^()]*\)", text):
        text = re.sub(r"\([^()]*\)", "", text)
    text = text.split(";")[0]
    text = text.split(":", 1)[1] if ":" in text else text
    items = [item.strip(" `") for item in text.split(",")]
    return [item for item in items if _MODULE_NAME.match(item)]


def _entries(lines: list[str]) -> Iterator[tuple[int, str, str]]:
    """(indent, name, description) with continuation lines joined; a bare list has no name."""
    entries: list[list[object]] = []
    column = 0
    for line in lines:
        if entries and line.strip() and len(line) - len(line.lstrip()) >= column > 0:
            entries[-1][2] = f"{entries[-1][2]} {line.strip()}"
        elif match := _ENTRY.match(line):
            column = len(match["indent"]) + len(match["name"]) + len(match["gap"])
            entries.append([len(match["indent"]), match["name"], match["text"]])
        elif match := _BARE_LIST.match(line):
            entries.append([len(match["indent"]), "", match["text"]])
    for indent, name, text in entries:
        yield int(str(indent)), str(name), str(text)


def layout_problems(lines: list[str]) -> Iterator[str]:
    """Every file, folder and listed name of a Layout tree exists where the tree puts it."""
    stack: list[tuple[int, Path]] = []
    for indent, name, text in _entries(lines):
        while stack and stack[-1][0] >= indent:
            stack.pop()
        parent = stack[-1][1] if stack else ROOT
        if not name:  # a bare list: names the folder above holds
            yield from _missing(parent, [n.strip() for n in text.split(",") if n.strip()])
            continue
        paths = [parent / part.strip() for part in name.split(" ")]
        for path in paths:
            if not path.exists():
                yield str(path.relative_to(ROOT))
        if name.endswith("/"):
            stack.append((indent, paths[0]))
            if len(paths) == 1:
                yield from _missing(paths[0], listed_names(text))


def _missing(folder: Path, names: list[str]) -> Iterator[str]:
    for name in names:
        name = name.rstrip("/")
        candidates = [folder / name, folder / f"{name}.py", *folder.glob(f"{name}.*")]
        if not any(c.exists() for c in candidates):
            yield f"{folder.relative_to(ROOT)}/{name}"


@pytest.mark.parametrize(
    ("doc", "heading"), [("README.md", "## Layout"), ("docs/design.md", "## 2. Layout")]
)
def test_docs_layout_trees_name_only_what_is_there(doc: str, heading: str) -> None:
    assert list(layout_problems(layout_block(ROOT / doc, heading))) == []


def test_docs_cite_no_document_the_repo_does_not_hold() -> None:
    # Old docstrings cited sections of a research note on the wire that never entered the repo.
    cited = [f"{p.relative_to(ROOT)}:{n}" for p, n, t in texts() if "wire reference" in t.lower()]
    assert cited == []


def test_docs_architecture_lists_every_migration() -> None:
    table = (ROOT / "ARCHITECTURE.md").read_text()
    migrations = sorted((ROOT / "supabase" / "migrations").glob("*.sql"))
    assert len(migrations) >= 7
    missing = [m.stem for m in migrations if m.stem.split("_", 1)[1] not in table]
    assert missing == []


# --- the resolver itself ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("see app.ops.logs.configure_logging", []),
        ("see app.ops.logs.request_fields()", ["request_fields"]),
        ("`app.analytics.load_*` frames", []),
        ("`app.analytics.nothing_*` frames", ["nothing_*"]),
        ("the old app.check module", ["app.check"]),
        ("in `app/api/body.py`", []),
        ("in `app/check.py`", ["app/check.py"]),
        ("`api/body.py` (package-relative)", []),
        ("the factory in `app.py`, https://x.org/a/b.py, /tmp/x/y.py", []),
        ("out/report.html is written by the script", []),
        ("`--json .local/bench/load_proof.json` is written by the bench", []),
        ("`request.app.state.services` holds them", []),
    ],
)
def test_docs_resolver_finds_only_what_does_not_resolve(text: str, found: list[str]) -> None:
    problems = list(unresolved_in(ROOT / "README.md", 1, text))
    assert len(problems) == len(found)
    assert all(any(f in p for f in found) for p in problems)


def test_docs_layout_parser_finds_what_is_not_there() -> None:
    lines = [
        "Makefile     `make run`",
        "nothing.toml  gone",
        "app/         the service: main (composition root), cli,",
        "             nothing_here; prose, like this",
        "  chat/      jobs: turn, relay (and more: gone_too)",
        "  store/     Supabase adapters: chat_store, outbox",
        "  local/     the Docker-free stack, never imported by the service",
        "    postgres, no_such_module",
    ]
    assert list(layout_problems(lines)) == [
        "nothing.toml",
        "app/nothing_here",
        "app/local/no_such_module",
    ]
