"""`sim/citizen`: a synthetic assembly member whose utilities depend on its persona.

utility(text) = common(text) + polarization * lean(persona) * axis(text) + own(persona, text)

- common ~ N(0, 1) per text and seed: what everyone shares;
- axis: how far right (+) or left (-) an outcome sits: a policy's coded lean times 1.5
  for texts of the policy dataset (experiments/political.py), else N(0, 1) per text;
- lean: the party phrase of the persona (census.yaml: -1 Democrat .. +1 Republican) plus
  N(0, 0.3) from the persona text; a persona without a known phrase gets N(0, 1);
- own ~ N(0, idio) per persona and text: personal taste.

P(A > B) = Phi((u_A - u_B) / (sqrt(2) * noise) + conformity * logit(s)), where s is the
share of the assembly that chose the first-listed option in the last round when the
prompt shows one (deliberation rounds), else the conformity term is 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import pandas as pd
from scipy.special import logit, ndtr

from valuescope.control.census import party_leans
from valuescope.control.prompts import read_share
from valuescope.models.base import Answer, Query
from valuescope.models.sim import _AGENTS, _float_param, _SimAgent, stable_seed


class CitizenAgent(_SimAgent):
    """Persona-dependent utilities and a planted pull toward the shown majority."""

    known_params = (*_SimAgent.known_params, "conformity", "polarization", "idio", "noise")

    def __init__(self, kind: str, params: dict[str, str], seed: int = 0) -> None:
        super().__init__(kind, params, seed=seed)
        self.conformity = _float_param(params, "conformity", 0.5, 0.0, 10.0)
        self.polarization = _float_param(params, "polarization", 1.0, 0.0, 10.0)
        self.idio = _float_param(params, "idio", 0.3, 0.0, 10.0)
        self.noise = _float_param(params, "noise", 1.0, 0.01, 100.0)
        self._phrases = sorted(party_leans().items(), key=lambda kv: -len(kv[0]))

    def lean(self, persona: str) -> float:
        """Left (-) to right (+) lean read from the persona's party phrase, plus noise."""
        rng = np.random.default_rng(stable_seed("lean", self.seed, persona))
        for phrase, value in self._phrases:  # longest first: "leans Democratic" before "Democrat"
            if phrase in persona:
                return value + float(rng.normal(scale=0.3))
        return float(rng.normal())

    def utility(self, persona: str, text: str) -> float:
        """This persona's hidden utility of an outcome text."""
        common = np.random.default_rng(stable_seed("common", self.seed, text)).normal()
        axis = _axis(text)
        own = np.random.default_rng(stable_seed("own", self.seed, persona, text)).normal()
        return float(common + self.polarization * self.lean(persona) * axis + self.idio * own)

    def p_query(self, q: Query) -> float:
        """P(first-listed option) for one query, deliberation pull included."""
        z = (self.utility(q.persona, q.option_a) - self.utility(q.persona, q.option_b)) / (
            np.sqrt(2) * self.noise
        )
        shown = read_share(q.messages)
        if shown is not None and self.conformity:
            z += self.conformity * float(logit(np.clip(shown, 0.02, 0.98)))
        return float(ndtr(z))

    def p_first(self, option_a: str, option_b: str, template: str = "default") -> float:
        return self.p_query(Query(messages=(), option_a=option_a, option_b=option_b))

    def _answer_one(self, q: Query) -> Answer:
        rng = np.random.default_rng(
            stable_seed(self.seed, q.messages, q.option_a, q.option_b, q.mode, q.sample_index)
        )
        refused = rng.random() < self.refusal_rate
        p_a = self.position_bias + (1 - self.position_bias) * self.p_query(q)
        if q.mode == "logprob":
            return Answer(p_a=0.5, mass=0.0) if refused else Answer(p_a=float(p_a), mass=1.0)
        if refused:
            return Answer(text="I would rather not choose between these two options.")
        return Answer(text=q.labels[0] if rng.random() < p_a else q.labels[1])

    def citizen_truth(self, personas: Sequence[str], outcomes: Sequence[str]) -> pd.DataFrame:
        """Hidden utilities, one row per (citizen, outcome): citizen, id, mean."""
        rows = [
            {"citizen": c, "id": i, "mean": self.utility(persona, text)}
            for c, persona in enumerate(personas)
            for i, text in enumerate(outcomes)
        ]
        return pd.DataFrame(rows)


def _axis(text: str) -> float:
    """Left-right position of an outcome (see the module docstring)."""
    lean = _policy_leans().get(text.strip())
    if lean is not None:
        return 1.5 * lean
    return float(np.random.default_rng(stable_seed("axis", text)).normal())


@lru_cache(maxsize=1)
def _policy_leans() -> dict[str, float]:
    try:  # imported late: the registry loads this module at start-up
        from valuescope.experiments.political import load_policies
    except ImportError:
        return {}
    return {p.text: p.lean for p in load_policies()}


_AGENTS["citizen"] = CitizenAgent
