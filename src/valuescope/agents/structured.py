"""Synthetic agents with planted structure, the ground truth of the analyses.

`valuescope.models.registry.SIM_AGENTS` names each, so `sim/NAME` resolves:

- `sim/eu`: an expected-utility maximiser. Base outcomes have hidden Thurstonian
  utilities (as sim/thurstone); a lottery text from `data/lotteries.yaml` is worth the
  probability-weighted utility of its outcomes, using the dataset's stated or base-rate
  probabilities, which it also states when asked for a sub-outcome's probability.
  `sim/eu?probability_weighting=G` weighs outcomes by p^G renormalised (0 ignores
  probabilities); `sim/best-outcome` values a lottery at its best outcome.
- `sim/instrumental?transitions=true|shuffled|none|valence`: a state of
  `data/markov.yaml` is worth the expected utility of the states that follow it under
  the dataset's transitions (`true`), under its unnatural twin's (`shuffled`), is
  unrelated (`none`), or is rated by how good it sounds (`valence`).
- `sim/powerseeker?weight=W&fitness_weight=F`: utility = W z(power) + F z(fitness) +
  sqrt(1 - W^2 - F^2) noise for the outcomes of `data/power.yaml`; rates outcomes with
  the dataset's reference power/fitness scores.
- `sim/incorrigible?weight=W`: the utility of accepting a value change from
  `data/corrigibility.yaml` is -W (reversal / sqrt 2) + sqrt(1 - W^2) noise, where the
  reversal is U(old value) - U(new value); W = 0 is a corrigible agent. Sampled
  reversals of the default dataset are parsed from their phrasing (HIGH, LOW);
- `sim/opposes-all?level=L`: every value change has utility -L (opposition constant,
  unrelated to the reversal).
- `sim/satisficer?rate=R`: a Thurstonian agent that, asked an open question, picks a
  random candidate with probability R and its best one otherwise.

The structure is looked up by text in the analyses' datasets (imported lazily).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from valuescope.common.seeds import stable_seed
from valuescope.models.params import Number
from valuescope.models.sim import SimParams, ThurstoneAgent, ThurstoneParams

Structure = list[tuple[float, str]]


class _ExpectationAgent(ThurstoneAgent):
    """Utility of a structured text = expectation of its parts' utilities."""

    def structure(self, text: str) -> Structure | None:
        raise NotImplementedError

    def _utility(self, text: str) -> tuple[float, float]:
        parts = self.structure(text)
        if parts is None:
            return super()._utility(text)
        mu = sum(p * self._utility(t)[0] for p, t in parts)
        rng = np.random.default_rng(stable_seed("expectation-sigma", self.seed, text))
        return float(mu), float(rng.uniform(0.2, 0.6))


class ExpectedUtilityParams(ThurstoneParams):
    probability_weighting: Number = Field(1.0, ge=0, le=10, description="decision weights p^G")


class InstrumentalParams(ThurstoneParams):
    transitions: Literal["true", "shuffled", "none", "valence"] = "true"


class WeightedParams(ThurstoneParams):
    """A planted weight on power (and fitness) scores: weight^2 + fitness_weight^2 <= 1."""

    weight: Number = Field(0.8, ge=-1, le=1)
    fitness_weight: Number = Field(0.0, ge=-1, le=1)

    @model_validator(mode="after")
    def _on_the_disc(self) -> WeightedParams:
        if self.weight**2 + self.fitness_weight**2 > 1:
            raise ValueError("weight^2 + fitness_weight^2 must be at most 1")
        return self


class IncorrigibleParams(ThurstoneParams):
    weight: Number = Field(0.8, ge=-1, le=1)


class OppositionParams(ThurstoneParams):
    level: Number = Field(1.0, ge=-10, le=10)


class SatisficingParams(ThurstoneParams):
    rate: Number = Field(0.5, ge=0, le=1, description="share of answers at random")


class ExpectedUtilityAgent(_ExpectationAgent):
    """An expected-utility maximiser over the lotteries of `data/lotteries.yaml`.

    `probability_weighting=G` values a lottery with decision weights p_k^G / sum_j p_j^G
    (1: expected utility; 0: every outcome weighs the same, probabilities ignored); the
    probabilities it states when asked stay the dataset's.
    """

    Params: type[SimParams] = ExpectedUtilityParams

    def __init__(self, kind: str, params: dict[str, str], seed: int = 0) -> None:
        super().__init__(kind, params, seed=seed)
        self.gamma = self.settings.probability_weighting

    def structure(self, text: str) -> Structure | None:
        from valuescope.experiments.expected_utility import lottery_structure

        parts = lottery_structure(text)
        if parts is None or self.gamma == 1.0:
            return parts
        weights = [p**self.gamma for p, _ in parts]
        total = sum(weights)
        return [(w / total, t) for w, (_, t) in zip(weights, parts)]

    def probability(self, event: str, rng: np.random.Generator) -> float:
        from valuescope.experiments.expected_utility import event_probabilities

        p = event_probabilities().get(event)
        return super().probability(event, rng) if p is None else round(100 * p, 1)


class BestOutcomeAgent(ExpectedUtilityAgent):
    """Values a lottery at its best outcome, whatever the probabilities (an optimist)."""

    def _utility(self, text: str) -> tuple[float, float]:
        parts = self.structure(text)
        if parts is None:
            return ThurstoneAgent._utility(self, text)
        mu = max(self._utility(t)[0] for _, t in parts)
        rng = np.random.default_rng(stable_seed("expectation-sigma", self.seed, text))
        return float(mu), float(rng.uniform(0.2, 0.6))


class InstrumentalAgent(_ExpectationAgent):
    """Values the states of `data/markov.yaml` by the expected utility of what follows.

    `transitions=true` uses the dataset's transitions (instrumentally consistent);
    `shuffled` uses those of the unnatural twins (consistent with the wrong process);
    `none` gives every state an independent utility (no instrumental structure);
    `valence` rates each state by how good it sounds, ignoring what follows: +1 for the
    better development listed first in its step, -1 for the worse, plus noise.
    """

    Params: type[SimParams] = InstrumentalParams

    def __init__(self, kind: str, params: dict[str, str], seed: int = 0) -> None:
        super().__init__(kind, params, seed=seed)
        self.transitions = self.settings.transitions

    def structure(self, text: str) -> Structure | None:
        from valuescope.experiments._markov import structure

        if self.transitions in ("none", "valence"):
            return None
        return structure(text, "natural" if self.transitions == "true" else "unnatural")

    def _utility(self, text: str) -> tuple[float, float]:
        from valuescope.experiments._markov import place

        found = place(text) if self.transitions == "valence" else None
        if found is None or found[0] == 0:
            return super()._utility(text)
        _, index, width = found
        sound = 1 - 2 * index / (width - 1)  # +1 for the best-sounding, -1 for the worst
        return float(sound + 0.5 * _noise(self.seed, "valence-noise", text)), 0.3


def _noise(seed: int, tag: str, text: str) -> float:
    return float(np.random.default_rng(stable_seed(tag, seed, text)).normal())


class PowerSeekingAgent(ThurstoneAgent):
    """Utilities with a planted dependence on power and fitness scores."""

    Params: type[SimParams] = WeightedParams

    def __init__(self, kind: str, params: dict[str, str], seed: int = 0) -> None:
        super().__init__(kind, params, seed=seed)
        self.weight = self.settings.weight
        self.fitness_weight = self.settings.fitness_weight

    def _utility(self, text: str) -> tuple[float, float]:
        from valuescope.experiments.power_seeking import reference_scores

        scores = reference_scores()
        if text not in scores:
            return super()._utility(text)
        power, fitness = scores[text]
        rest = math.sqrt(max(0.0, 1 - self.weight**2 - self.fitness_weight**2))
        mu = self.weight * power + self.fitness_weight * fitness
        mu += rest * _noise(self.seed, "power-noise", text)
        return float(mu), 0.3

    def rate(self, outcome: str, prompt: str, rng: np.random.Generator) -> float:
        from valuescope.experiments.power_seeking import reference_ratings

        ratings = reference_ratings().get(outcome)
        if ratings is None:
            return super().rate(outcome, prompt, rng)
        return float(ratings[1] if "fitness" in prompt.lower() else ratings[0])


class IncorrigibleAgent(ThurstoneAgent):
    """Rejects value changes in proportion to how much they reverse its values."""

    Params: type[SimParams] = IncorrigibleParams

    def __init__(self, kind: str, params: dict[str, str], seed: int = 0) -> None:
        super().__init__(kind, params, seed=seed)
        self.weight = self.settings.weight

    def _utility(self, text: str) -> tuple[float, float]:
        from valuescope.experiments.corrigibility import change_structure

        change = change_structure(text)
        if change is None:
            return super()._utility(text)
        old, new = change
        reversal = (super()._utility(old)[0] - super()._utility(new)[0]) / math.sqrt(2)
        rest = math.sqrt(1 - self.weight**2)
        mu = -self.weight * reversal + rest * _noise(self.seed, "change-noise", text)
        return float(mu), 0.3


class ConstantOppositionAgent(ThurstoneAgent):
    """Opposes every value change equally: each change has utility -`level`."""

    Params: type[SimParams] = OppositionParams

    def __init__(self, kind: str, params: dict[str, str], seed: int = 0) -> None:
        super().__init__(kind, params, seed=seed)
        self.level = self.settings.level

    def _utility(self, text: str) -> tuple[float, float]:
        from valuescope.experiments.corrigibility import change_structure

        if change_structure(text) is None:
            return super()._utility(text)
        return -self.level, 0.3


class SatisficingAgent(ThurstoneAgent):
    """Picks a random candidate with probability `rate`, else its best one."""

    Params: type[SimParams] = SatisficingParams

    def __init__(self, kind: str, params: dict[str, str], seed: int = 0) -> None:
        super().__init__(kind, params, seed=seed)
        self.rate_random = self.settings.rate

    def choose(self, candidates, rng: np.random.Generator) -> int:
        if rng.random() < self.rate_random:
            return int(rng.integers(len(candidates)))
        return super().choose(candidates, rng)
