"""valuescope: measure, analyse and control the value systems of language models.

The Python API (docs/python-api.md) is imported on first use, so `import valuescope` and
`valuescope --version` stay fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from valuescope._version import __version__

if TYPE_CHECKING:
    from valuescope.api import (
        ComparisonRun,
        ExperimentRun,
        Metrics,
        Run,
        compare,
        experiment,
        load,
        measure,
    )

__all__ = [
    "ComparisonRun",
    "ExperimentRun",
    "Metrics",
    "Run",
    "__version__",
    "compare",
    "experiment",
    "load",
    "measure",
]


def __getattr__(name: str) -> Any:
    """Load valuescope.api on first use of one of its names."""
    if name not in __all__:
        raise AttributeError(f"module 'valuescope' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module("valuescope.api"), name)
    globals()[name] = value  # later lookups skip this function
    return value
