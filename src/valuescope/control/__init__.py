"""Utility control: a simulated citizens' assembly, and fine-tuning a model toward it.

`assemble` samples citizens from census marginals and collects their votes (with
deliberation rounds); `train` fine-tunes an hf/ model (LoRA) so its answers match the
assembly's vote shares; `evaluate` compares the model before and after, and against
prompting it with the assembly's views. torch is imported only by train/evaluate.

The names below are imported on first use: the command line imports this package for its
`control` commands, and `valuescope --version` should not wait for scipy.
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> the module of valuescope.control that defines it
_NAMES = {
    "AssembleConfig": "valuescope.control.assembly_run",
    "assemble": "valuescope.control.assembly_run",
    "load_assembly": "valuescope.control.assembly_run",
    "Citizen": "valuescope.control.census",
    "marginals": "valuescope.control.census",
    "sample_citizens": "valuescope.control.census",
    "ControlError": "valuescope.control.errors",
}

__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    """Import the module that defines `name` on first use."""
    module = _NAMES.get(name)
    if module is None:
        raise AttributeError(f"module 'valuescope.control' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
