"""valuescope: measure, analyse and control the value systems of language models.

`valuescope.measure`, `load`, `experiment` and `compare` and the classes `Run`,
`ExperimentRun`, `ComparisonRun` and `Metrics` are those of `valuescope.api`
(docs/python-api.md). They are imported on first use, so `import valuescope` stays light.
"""

from __future__ import annotations

from typing import Any

from valuescope._version import __version__ as __version__

# the names of valuescope.api this package hands out (no __all__: the API reference
# documents every submodule, which pdoc limits to __all__ where there is one)
API_NAMES = (
    "measure",
    "load",
    "experiment",
    "compare",
    "Run",
    "ExperimentRun",
    "ComparisonRun",
    "Metrics",
)


def __getattr__(name: str) -> Any:
    """Load valuescope.api on first use of one of its names."""
    if name not in API_NAMES:
        raise AttributeError(f"module 'valuescope' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module("valuescope.api"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *API_NAMES})
