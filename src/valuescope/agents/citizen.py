"""`sim/citizen`: a synthetic assembly member whose utilities depend on its persona.

utility(text) = common(text) + polarization * lean(persona) * axis(text) + own(persona, text)

- common ~ N(0, 1) per text and seed: what everyone shares;
- axis: how far right (+) or left (-) an outcome sits: a policy's coded lean times 1.5
  for texts of the policy dataset (experiments/political.py), else N(0, 1) per text;
- lean: the party phrase of the persona (census.yaml: -1 Democrat .. +1 Republican) plus
  N(0, 0.3) from the persona text; a persona without a known phrase gets N(0, 1);
- own ~ N(0, idio) per persona and text: personal taste.

P(A > B) = Phi((u_A - u_B) / (sqrt(2) * noise) + pull), where the pull is 0 in the
first round. In a deliberation round showing only the vote share s of the first-listed
option, pull = conformity * logit(s). When members' arguments are shown as well,
pull = (1 - argument_weight) * conformity * logit(s) + persuasion * mean signed strength
of the arguments (+ for the first-listed option): the citizen weighs reasons, which the
assembly draws from both sides, more than the head count.

Asked for an argument (prompts.ARGUMENT_REQUEST), a citizen answers with one sentence
naming the option it chose and how strongly it holds the view (strongly / clearly /
slightly, from its own utility gap), which other synthetic citizens read back.

Planted agents: `sim/citizen-herd` (conformity 3: copies the majority it is shown) and
`sim/citizen-fixed` (conformity 0, persuasion 0: deliberation changes nothing).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import pandas as pd
from pydantic import Field
from scipy.special import logit, ndtr

from valuescope.common.seeds import stable_seed
from valuescope.control.census import party_leans
from valuescope.control.prompts import ARGUMENT_MARK, read_arguments, read_share
from valuescope.models.base import Answer, Query
from valuescope.models.params import Number
from valuescope.models.sim import SimParams, _SimAgent


class CitizenParams(SimParams):
    """`sim/citizen?...`: the pull of the shown majority and of arguments, and the views."""

    conformity: Number = Field(0.5, ge=0, le=10, description="pull toward the shown majority")
    polarization: Number = Field(1.0, ge=0, le=10)
    idio: Number = Field(0.3, ge=0, le=10, description="idiosyncratic utility spread")
    noise: Number = Field(1.0, ge=0.01, le=100)
    persuasion: Number = Field(1.0, ge=0, le=10, description="pull of the arguments shown")
    argument_weight: Number = Field(0.8, ge=0, le=1)


class HerdingParams(CitizenParams):
    conformity: Number = Field(3.0, ge=0, le=10, description="pull toward the shown majority")


class FixedParams(CitizenParams):
    conformity: Number = Field(0.0, ge=0, le=10, description="pull toward the shown majority")
    persuasion: Number = Field(0.0, ge=0, le=10, description="pull of the arguments shown")


class CitizenAgent(_SimAgent):
    """Persona-dependent utilities and a planted pull toward the shown majority."""

    Params: type[SimParams] = CitizenParams

    def __init__(self, kind: str, params: dict[str, str], seed: int = 0) -> None:
        super().__init__(kind, params, seed=seed)
        self.conformity = self.settings.conformity
        self.persuasion = self.settings.persuasion
        self.argument_weight = self.settings.argument_weight
        self.polarization = self.settings.polarization
        self.idio = self.settings.idio
        self.noise = self.settings.noise
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
        if shown is None:
            return float(ndtr(z))
        herd = self.conformity * float(logit(np.clip(shown, 0.02, 0.98)))
        strengths = [
            s if text == q.option_a else -s
            for text, s in read_arguments(q.messages)
            if text in (q.option_a, q.option_b)
        ]
        if strengths:
            herd = (1 - self.argument_weight) * herd + self.persuasion * float(np.mean(strengths))
        return float(ndtr(z + herd))

    def argument(self, q: Query) -> str:
        """One sentence for the option this member chose, with how strongly it holds it."""
        chosen = q.option_a if "You chose Option A" in q.messages[-1][1] else q.option_b
        other = q.option_b if chosen == q.option_a else q.option_a
        gap = abs(self.utility(q.persona, chosen) - self.utility(q.persona, other))
        word = "strongly" if gap > 1.5 else "clearly" if gap > 0.5 else "slightly"
        return f'I prefer "{chosen}" {word}, {ARGUMENT_MARK}'

    def p_first(self, option_a: str, option_b: str, template: str = "default") -> float:
        return self.p_query(Query(messages=(), option_a=option_a, option_b=option_b))

    def _answer_one(self, q: Query) -> Answer:
        rng = np.random.default_rng(
            stable_seed(self.seed, q.messages, q.option_a, q.option_b, q.mode, q.sample_index)
        )
        refused = rng.random() < self.refusal_rate
        if q.messages and "give the main reason for your choice" in q.messages[-1][1]:
            return Answer(text=self.argument(q))
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


class HerdingCitizen(CitizenAgent):
    """Planted violation: copies the majority it is shown (conformity 3)."""

    Params: type[SimParams] = HerdingParams


class FixedCitizen(CitizenAgent):
    """Planted control: fixed views, deliberation moves nothing."""

    Params: type[SimParams] = FixedParams
