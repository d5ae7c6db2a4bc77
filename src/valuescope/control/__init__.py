"""Utility control: a simulated citizens' assembly, and fine-tuning a model toward it.

`assemble` samples citizens from census marginals and collects their votes (with
deliberation rounds); `train` fine-tunes an hf/ model (LoRA) so its answers match the
assembly's vote shares; `evaluate` compares the model before and after, and against
prompting it with the assembly's views. torch is imported only by train/evaluate.
"""

from valuescope.control.assembly_run import AssembleConfig, assemble, load_assembly
from valuescope.control.census import Citizen, marginals, sample_citizens
from valuescope.control.errors import ControlError

__all__ = [
    "AssembleConfig",
    "Citizen",
    "ControlError",
    "assemble",
    "load_assembly",
    "marginals",
    "sample_citizens",
]
