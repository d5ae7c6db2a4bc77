"""Planted agents of the power-seeking analysis (`experiments/power_seeking.py`).

Every outcome has a ground-truth power and fitness score (`power_seeking.true_scores`:
our reference ratings for `data/power.yaml`, seeded values from the text otherwise).
Asked with the analysis's power (fitness) comparison template, an agent compares its
JUDGED power (fitness): `judgement * truth + sqrt(1 - judgement^2) * noise`; with any
other template it compares its utility `weight * power + fitness_weight * fitness +
sqrt(1 - weight^2 - fitness_weight^2) * noise`. Asked for a 0-10 rating ("Outcome: ...")
it rates its judged score, 5 + 2 z, clipped.

- `sim/power-seeker` (weight 0.8): prefers power; its utilities correlate with power.
- `sim/power-indifferent` (weight 0): judges power correctly, but its utilities ignore it.
- `sim/power-averse` (weight -0.8): avoids power.
- `sim/power-blind` (weight 0.8, judgement 0): seeks power but cannot judge it, so the
  correlation with its OWN power score is about 0 (a violation of the method's
  assumption that the judge knows power; `--param judge=...` repairs it).
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import Field
from scipy.special import ndtr

from valuescope.common.seeds import stable_seed
from valuescope.errors import UnknownModelError
from valuescope.models.params import MaybeNumber, Number, model_label
from valuescope.models.sim import SimParams, ThurstoneAgent, ThurstoneParams

SIGMA = 0.3
DEFAULTS = {
    "power-seeker": (0.8, 1.0),
    "power-indifferent": (0.0, 1.0),
    "power-averse": (-0.8, 1.0),
    "power-blind": (0.8, 0.0),
}


def _noise(*parts: object) -> float:
    return float(np.random.default_rng(stable_seed(*parts)).normal())


class PowerParams(ThurstoneParams):
    """`sim/power-*?...`; weight and judgement default to the kind's (DEFAULTS)."""

    weight: MaybeNumber = Field(None, ge=-1, le=1, description="planted weight on true power")
    fitness_weight: Number = Field(0.0, ge=-1, le=1)
    judgement: MaybeNumber = Field(None, ge=0, le=1, description="fidelity of power judgements")


class PowerAgent(ThurstoneAgent):
    """Utilities with a planted weight on true power; judgements of power with a fidelity."""

    Params: type[SimParams] = PowerParams

    def __init__(self, kind: str, params: dict[str, str], seed: int = 0) -> None:
        super().__init__(kind, params, seed=seed)
        weight, judgement = DEFAULTS[kind]
        given = self.settings
        self.weight = weight if given.weight is None else given.weight
        self.fitness_weight = given.fitness_weight
        self.judgement = judgement if given.judgement is None else given.judgement
        if self.weight**2 + self.fitness_weight**2 > 1:
            label = model_label(f"sim/{kind}", params)
            raise UnknownModelError(
                f"model {label!r}: weight^2 + fitness_weight^2 must be at most 1"
            )

    def judged(self, text: str, key: str) -> float:
        """The agent's judged power or fitness of an outcome (z scale)."""
        from valuescope.experiments.power_seeking import true_scores

        truth = true_scores(text)[0 if key == "power" else 1]
        rest = math.sqrt(1 - self.judgement**2)
        return self.judgement * truth + rest * _noise("judged", key, self.seed, text)

    def _utility(self, text: str) -> tuple[float, float]:
        from valuescope.experiments.power_seeking import true_scores

        power, fitness = true_scores(text)
        rest = math.sqrt(max(0.0, 1 - self.weight**2 - self.fitness_weight**2))
        mu = self.weight * power + self.fitness_weight * fitness
        return float(mu + rest * _noise("power-utility", self.seed, text)), SIGMA

    def p_first(self, option_a: str, option_b: str, template: str = "default") -> float:
        from valuescope.experiments.power_seeking import score_kind

        key = score_kind(template)
        if key is None:
            return super().p_first(option_a, option_b, template)
        diff = self.judged(option_a, key) - self.judged(option_b, key)
        return float(ndtr(diff / (math.sqrt(2) * SIGMA)))

    def rate(self, outcome: str, prompt: str, rng: np.random.Generator) -> float:
        key = "fitness" if "fitness" in prompt.lower() else "power"
        return float(np.clip(round(5 + 2 * self.judged(outcome, key)), 0, 10))
