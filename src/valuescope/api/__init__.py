"""The Python API: measure a model, read runs back, run analyses, compare runs.

`valuescope.measure`, `load`, `experiment` and `compare` (docs/python-api.md) go through
the same pipeline and the same reader as the command line.
"""

from valuescope.api.analyses import compare, experiment
from valuescope.api.measure import SettingError, load, measure
from valuescope.api.metrics import Metrics
from valuescope.api.results import ComparisonRun, ExperimentRun, Run

__all__ = [
    "ComparisonRun",
    "ExperimentRun",
    "Metrics",
    "Run",
    "SettingError",
    "compare",
    "experiment",
    "load",
    "measure",
]
