"""The layer table: which top-level part of valuescope sits at which layer.

A module may import only modules of its own layer or of lower layers (one-way imports).
docs/architecture.md describes this table; tests/test_architecture.py and
scripts/import_graph.py check the code against it. Keys are the top-level subpackages and
modules of valuescope (the "package level" nodes); "" is the root `valuescope/__init__`.
"""

from __future__ import annotations

LAYERS: dict[str, int] = {
    # 0: foundations, import nothing of valuescope above them
    "_layers": 0,
    "_version": 0,
    "errors": 0,
    "atomic": 0,
    "interrupts": 0,
    "terminal": 0,
    "common": 0,
    "stats": 0,
    # 1: outcomes, the fitter, the backends (and the generic synthetic agents)
    "outcomes": 1,
    "fit": 1,
    "models": 1,
    # 2: pair design, elicitation (prompts, parsing, cache), the engine
    "design": 2,
    "elicit": 2,
    "engine": 2,
    # 3: the run core (pipeline, evaluation of a run, run directory, sensitivity), settings
    "runcore": 3,
    "pipeline": 3,
    "evaluate": 3,
    "rundir": 3,
    "sensitivity": 3,
    "provenance": 3,
    "config": 3,
    "cli_options": 3,
    # 4: reports and export
    "report": 4,
    "export": 4,
    # 5: the analyses
    "experiments": 5,
    # 6: control (assembly, training): an analysis of its own, with its own data
    "control": 6,
    # 7: the planted agents; they read the datasets and parsers of the analyses and of
    # control (the citizens), and nothing but the provider table names them
    "agents": 7,
    # 8: user entry points
    "api": 8,
    "cli": 8,
    "__main__": 8,
    "": 8,
}

# Modules the lazy provider table names as strings; they are imported on first use, so
# they are not import-time dependencies of the table's module.
LAZY_TABLE_MODULE = "valuescope.models.registry"

# What `valuescope.models` (the backends) must never import, at any depth of its own files.
BACKENDS_NEVER_IMPORT: tuple[str, ...] = (
    "experiments",
    "agents",
    "control",
    "runcore",
    "pipeline",
    "evaluate",
    "rundir",
    "sensitivity",
    "engine",
    "fit",
    "report",
)


def layer_of(module: str) -> int | None:
    """The layer of a dotted module name under valuescope, None if the table lacks it."""
    parts = module.split(".")
    if parts[0] != "valuescope":
        return None
    top = parts[1] if len(parts) > 1 else ""
    return LAYERS.get(top)
