"""The import graph: no cycles, a layer for every module, and a service that needs no extras.

The graph is grimp's (what import-linter checks), built from the source: imports inside functions
and under `TYPE_CHECKING` count too.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib

import grimp
import pytest

from tests.support.database import ROOT

# What `chat-stream serve` (and `migrate`, `check`) loads: the composition root and the CLI's
# production commands. `app.cli` itself is left out: its `dev`/`status` commands reach app.local.
SERVICE_ROOTS = (
    "app.main",
    "app.api.protocol",
    "app.ops.check",
    "app.db",
    "app.store.attestation",
    "app.config",
)
# Installed by the `local` and `analytics` extras only.
EXTRAS_ONLY = {"pandas", "matplotlib", "numpy", "psycopg_pool", "bcrypt", "pgserver"}


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("app", "bench", "tests", include_external_packages=True)


def test_import_graph_has_no_cycles(graph: grimp.ImportGraph) -> None:
    ours = [m for m in graph.modules if m.split(".")[0] in {"app", "bench", "tests"}]
    imports = [(a, b) for a in ours for b in graph.find_modules_directly_imported_by(a)]
    assert len(imports) > 500  # the whole graph was read
    cycles = [
        (a, chain)
        for a, b in imports
        if (chain := graph.find_shortest_chain(importer=b, imported=a)) is not None
    ]
    assert cycles == []


def test_layers_contract_places_every_module_of_app_in_exactly_one_layer() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    [layers] = [c for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers"]
    listed = {name for layer in layers["layers"] for name in re.split(r"\s*[|:]\s*", layer)}
    modules = {
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for p in (ROOT / "app").rglob("*.py")
    }
    assert listed <= modules  # every layer names a real module or package

    def layers_of(module: str) -> set[str]:
        return {name for name in listed if module == name or module.startswith(name + ".")}

    # A package's own `__init__` may stand above the layers it holds (app.core, app.ops).
    holders = {name.rsplit(".", 1)[0] for name in listed if name.count(".") > 1}
    unplaced = {m for m in modules - {"app"} - holders if len(layers_of(m)) != 1}
    assert unplaced == set()


def test_service_imports_nothing_from_the_local_or_analytics_extras(
    graph: grimp.ImportGraph,
) -> None:
    reached: set[str] = set()
    for root in SERVICE_ROOTS:
        reached |= {root, *graph.find_upstream_modules(root, as_package=True)}
    assert {m for m in reached if m.split(".")[0] in EXTRAS_ONLY} == set()
    assert not any(m == "app.local" or m.startswith("app.local.") for m in reached)


def test_importing_the_service_loads_no_extra_at_run_time() -> None:
    code = (
        "import sys, app.main, app.cli, app.api.protocol, app.ops.check\n"
        "app.main.create_app\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout.split()
    assert "fastapi" in loaded
    # cryptography's ssh serialization imports bcrypt when it happens to be installed (optional).
    assert (EXTRAS_ONLY - {"bcrypt"}).isdisjoint(loaded)
