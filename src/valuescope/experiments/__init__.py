"""The analyses of the Utility Engineering paper, each run as `valuescope experiment NAME`."""

from __future__ import annotations

import importlib

from valuescope.experiments.base import (
    Experiment,
    ExperimentContext,
    ExperimentError,
    write_result,
)

# name -> module defining EXPERIMENT; imported lazily so one broken analysis
# cannot stop the others from listing or running.
MODULES = {
    "expected-utility": "valuescope.experiments.expected_utility",
    "instrumental": "valuescope.experiments.instrumental",
    "maximization": "valuescope.experiments.maximization",
    "exchange-rates": "valuescope.experiments.exchange_rates",
    "time-discounting": "valuescope.experiments.time_discounting",
    "power-seeking": "valuescope.experiments.power_seeking",
    "political": "valuescope.experiments.political",
    "corrigibility": "valuescope.experiments.corrigibility",
    "convergence": "valuescope.experiments.convergence",
}


def get_experiment(name: str) -> Experiment:
    """The analysis called `name`, or a clear error listing the known ones."""
    module = MODULES.get(name)
    if module is None:
        raise ExperimentError(
            f"unknown analysis {name!r}; known: {', '.join(MODULES)} (valuescope experiment --list)"
        )
    return importlib.import_module(module).EXPERIMENT


def list_experiments() -> list[Experiment]:
    """Every analysis whose module is present."""
    found = []
    for name in MODULES:
        try:
            found.append(get_experiment(name))
        except ModuleNotFoundError:
            continue
    return found


__all__ = [
    "Experiment",
    "ExperimentContext",
    "ExperimentError",
    "MODULES",
    "get_experiment",
    "list_experiments",
    "write_result",
]
