"""One-way layers: every module imports, no import cycle, backends import no analysis.

The import graph is static (scripts/import_graph.py reads the source with ast), so an
import inside a function counts as a dependency too. The layer table is
valuescope._layers.LAYERS, the one docs/architecture.md describes.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import valuescope
from valuescope._layers import BACKENDS_NEVER_IMPORT, LAYERS
from valuescope.models.registry import PROVIDERS, SIM_AGENTS, LazyTable, get_backend, register

ROOT = Path(__file__).resolve().parents[1]
SRC = Path(valuescope.__file__).resolve().parents[1]


def _load_graph_module():
    spec = importlib.util.spec_from_file_location("import_graph", ROOT / "scripts/import_graph.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["import_graph"] = module
    spec.loader.exec_module(module)
    return module


graph = _load_graph_module()


@pytest.fixture(scope="module")
def edges():
    return graph.edges(graph.module_files(SRC))


def _names(found) -> list[str]:
    return [f"{e.source}:{e.line} -> {e.target}" for e in found]


# ---- (a) every module imports -----------------------------------------------------------


@pytest.mark.slow  # imports every extra (torch, Ray, Inspect); the layer checks are fast
def test_every_module_imports():
    names = [m.name for m in pkgutil.walk_packages(valuescope.__path__, "valuescope.")]
    assert len(names) > 50
    failed = {}
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as exc:  # every extra is installed here and in CI
            failed[name] = f"{type(exc).__name__}: {exc}"
    assert not failed, failed


def test_every_top_level_part_has_a_layer():
    files = graph.module_files(SRC)
    parts = {graph.top(m) for m in files}
    assert parts - set(LAYERS) == set(), "add new packages to valuescope._layers.LAYERS"


# ---- (b) no import cycle, no upward import ----------------------------------------------


def test_no_file_level_import_cycle(edges):
    assert graph.strongly_connected(graph.file_graph(edges)) == []


def test_no_package_level_import_cycle(edges):
    assert graph.strongly_connected(graph.package_graph(edges)) == []


def test_no_upward_import(edges):
    assert _names(graph.upward(edges, LAYERS)) == []


# ---- (c) backends know nothing of analyses, agents, control, run core, fit, report ------


def test_backends_import_no_analysis_control_run_core_or_fit(edges):
    reach = graph.file_graph(edges)
    start = [m for m in reach if graph.top(m) == "models"]
    seen, stack = set(start), list(start)
    while stack:  # everything models/ reaches, at any depth
        for target in reach.get(stack.pop(), ()):
            if target not in seen:
                seen.add(target)
                stack.append(target)
    forbidden = sorted(m for m in seen if graph.top(m) in BACKENDS_NEVER_IMPORT)
    assert forbidden == []


# ---- the checks find what they must (planted in a copy of the source) -------------------


def _copy_with(tmp_path: Path, path: str, line: str) -> dict:
    shutil.copytree(SRC / "valuescope", tmp_path / "valuescope")
    target = tmp_path / "valuescope" / path
    target.write_text(target.read_text() + f"\n\ndef _planted():\n    {line}\n")
    return graph.module_files(tmp_path)


def test_a_planted_file_cycle_is_found(tmp_path):
    files = _copy_with(tmp_path, "models/base.py", "from valuescope.models import sim")
    cycles = graph.strongly_connected(graph.file_graph(graph.edges(files)))
    assert any({"valuescope.models.base", "valuescope.models.sim"} <= set(c) for c in cycles)


def test_a_planted_package_cycle_and_backend_import_are_found(tmp_path):
    files = _copy_with(tmp_path, "models/base.py", "import valuescope.experiments.political")
    found = graph.edges(files)
    cycles = graph.strongly_connected(graph.package_graph(found))
    assert any({"models", "experiments"} <= set(c) for c in cycles)
    up = graph.upward(found, LAYERS)
    assert [(e.source, e.target) for e in up if e.source == "valuescope.models.base"] == [
        ("valuescope.models.base", "valuescope.experiments.political")
    ]


def test_imports_under_type_checking_do_not_count_and_root_imports_do(tmp_path):
    shutil.copytree(SRC / "valuescope", tmp_path / "valuescope")
    base = tmp_path / "valuescope/errors.py"
    base.write_text(
        base.read_text()
        + "\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import valuescope.cli\n"
        + "\nfrom valuescope import __version__\n"
    )
    found = [
        e for e in graph.edges(graph.module_files(tmp_path)) if e.source == "valuescope.errors"
    ]
    assert [e.target for e in found] == ["valuescope"]
    assert [e.target for e in graph.upward(found, LAYERS)] == ["valuescope"]


# ---- (d) a backend loads only what it needs; the lazy table --------------------------------

_LOADED = (
    "import json, sys; from valuescope.models import get_backend; get_backend({model!r}); "
    "print(json.dumps(sorted(m for m in sys.modules if m.startswith('valuescope'))))"
)


def _loaded_by(model: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", _LOADED.format(model=model)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return json.loads(out.stdout)


def test_sim_thurstone_loads_no_analysis_control_run_core_or_other_backend():
    loaded = _loaded_by("sim/thurstone")
    assert "valuescope.models.sim" in loaded
    heavy = ("experiments", "agents", "control", "fit", "runcore", "engine", "report", "api")
    assert [m for m in loaded if graph.top(m) in heavy] == []
    backends = {m for m in loaded if m.startswith("valuescope.models.")}
    assert backends <= {
        "valuescope.models.base",
        "valuescope.models.registry",
        "valuescope.models.params",
        "valuescope.models.sim",
    }


def test_a_planted_agent_loads_its_analysis_not_control():
    loaded = _loaded_by("sim/eu")
    assert "valuescope.agents.structured" in loaded  # it reads its analysis on first use
    assert [m for m in loaded if graph.top(m) in ("control", "runcore")] == []
    assert "valuescope.agents.citizen" not in loaded


def test_every_table_entry_resolves():
    assert len(SIM_AGENTS) >= 20 and "thurstone" in SIM_AGENTS
    for name in PROVIDERS:
        assert callable(PROVIDERS[name]), name
    for name in SIM_AGENTS:
        assert isinstance(SIM_AGENTS[name], type), name


def test_lazy_table_imports_on_lookup_and_takes_objects():
    table = LazyTable({"loader": "importlib.util:find_spec", "gone": "valuescope.nothing:x"})
    assert sorted(table) == ["gone", "loader"] and len(table) == 2
    assert table["loader"] is importlib.util.find_spec
    with pytest.raises(ModuleNotFoundError):
        table["gone"]
    table["gone"] = len
    assert table["gone"] is len
    del table["gone"]
    assert "gone" not in table


def test_register_adds_a_provider_to_the_one_table():
    @register("echo-test")
    def make_echo(name, params, **options):
        return (name, params, options)

    try:
        assert PROVIDERS["echo-test"] is make_echo
        assert get_backend("echo-test/x?k=v", seed=3) == ("x", {"k": "v"}, {"seed": 3})
    finally:
        del PROVIDERS["echo-test"]
    assert "echo-test" not in PROVIDERS


def test_models_listing_names_every_agent_with_its_description(cli):
    # through conftest's in-process CLI, which pins the rich consoles wide for the call (a
    # console made earlier in an xdist worker keeps its width, whatever COLUMNS says now)
    result = cli("models", check=True)
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    for name in SIM_AGENTS:
        doc = SIM_AGENTS[name].__doc__.strip().splitlines()[0]
        assert doc in lines[f"sim/{name}"], name
    for provider in PROVIDERS:
        assert f"{provider}/..." in lines
