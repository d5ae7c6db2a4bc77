"""Synthetic agents (`sim/...`): seeded, scriptable backends with known ground truth."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence

import numpy as np
import pandas as pd
from pydantic import Field
from scipy.special import expit, ndtr

from valuescope.common.seeds import stable_seed
from valuescope.errors import UnknownModelError, did_you_mean
from valuescope.models.base import Answer, Query
from valuescope.models.params import MaybeWhole, ModelParams, Number, validate_params
from valuescope.models.registry import SIM_AGENTS

REFUSAL_TEXT = "I would rather not choose between these two options."

# What synthetic agents read in free-text prompts (`generate`): numbered candidate lines
# ("1. text") ask for a choice; a line "Outcome: text" asks for a 0-10 rating; a line
# "Event: text" asks for a probability in percent.
CANDIDATE_RE = re.compile(r"^\s*(\d+)[.)]\s+(.+?)\s*$", re.M)
OUTCOME_RE = re.compile(r"^Outcome:\s*(.+?)\s*$", re.M)
EVENT_RE = re.compile(r"^Event:\s*(.+?)\s*$", re.M)


class SimParams(ModelParams):
    """`sim/<agent>?...`: what every synthetic agent takes."""

    seed: MaybeWhole = Field(None, ge=0, le=2**63, description="default: the run's --seed")
    position_bias: Number = Field(0.0, ge=0, le=1, description="share answering option A")
    refusal_rate: Number = Field(0.0, ge=0, le=1)
    delay: Number = Field(0.0, ge=0, le=60, description="seconds per batch")
    template_noise: Number = Field(0.0, ge=0, le=100, description="utility shift per template")
    noisy_template: str | None = Field(None, description="the one template with that noise")
    logprob_noise: Number = Field(0.0, ge=0, le=100, description="logit noise per prompt")


class _SimAgent:
    """Shared machinery: a per-query random stream, refusals, position bias, delay."""

    supports_logprobs = True
    Params: type[SimParams] = SimParams  # each agent's parameters, declared once

    def __init__(self, kind: str, params: dict[str, str], seed: int = 0) -> None:
        self.settings = validate_params(self.Params, f"sim/{kind}", params)
        self.seed = seed if self.settings.seed is None else self.settings.seed
        self.position_bias = self.settings.position_bias
        self.refusal_rate = self.settings.refusal_rate
        self.delay = self.settings.delay
        self.template_noise = self.settings.template_noise
        self.noisy_template = self.settings.noisy_template
        self.logprob_noise = self.settings.logprob_noise
        self.params = params
        query = "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "seed")
        self.name = f"sim/{kind}" + (f"?{query}" if query else "") + f"#seed={self.seed}"

    def p_first(self, option_a: str, option_b: str, template: str = "default") -> float:
        """The agent's unbiased probability of choosing option A under a prompt template."""
        raise NotImplementedError

    def template_offset(self, text: str, template: str) -> float:
        """Utility shift of an outcome under one template (planted prompt sensitivity)."""
        if not self.template_noise:
            return 0.0
        if self.noisy_template is not None and template != self.noisy_template:
            return 0.0
        rng = np.random.default_rng(stable_seed("template", self.seed, template, text))
        return float(rng.normal(scale=self.template_noise))

    def generate(
        self,
        prompts: Sequence[tuple[tuple[str, str], ...]],
        max_tokens: int = 256,
        temperature: float = 1.0,
        seed: int = 0,
    ) -> list[str]:
        """Free-text replies, read from the prompt conventions above (CANDIDATE_RE, ...)."""
        return [self._generate_one(messages, seed) for messages in prompts]

    def _generate_one(self, messages: tuple[tuple[str, str], ...], seed: int) -> str:
        user = next((c for role, c in reversed(messages) if role == "user"), "")
        rng = np.random.default_rng(stable_seed("generate", self.seed, messages, seed))
        if m := OUTCOME_RE.search(user):
            return f"{self.rate(m.group(1), user, rng):g}"
        if m := EVENT_RE.search(user):
            return f"{self.probability(m.group(1), rng):g}%"
        candidates = [text for _, text in CANDIDATE_RE.findall(user)]
        if len(candidates) >= 2:
            return f"I would choose this: {candidates[self.choose(candidates, rng)]}"
        return "I am not sure how to answer that."

    def choose(self, candidates: Sequence[str], rng: np.random.Generator) -> int:
        """The candidate that wins the most pairwise comparisons; ties broken at random."""
        n = len(candidates)
        score = np.array(
            [
                sum(self.p_first(candidates[i], candidates[j]) for j in range(n) if j != i)
                for i in range(n)
            ]
        )
        ties = np.flatnonzero(score >= score.max() - 1e-9)
        return int(ties[rng.integers(len(ties))])

    def rate(self, outcome: str, prompt: str, rng: np.random.Generator) -> float:
        """A 0-10 rating of `outcome` for the question in `prompt`; uninformed: at random."""
        return float(rng.integers(0, 11))

    def probability(self, event: str, rng: np.random.Generator) -> float:
        """The agent's probability (percent) of `event`; uninformed: at random."""
        return float(rng.integers(0, 101))

    def answer(self, queries: Sequence[Query]) -> list[Answer]:
        if self.delay:
            time.sleep(self.delay)
        return [self._answer_one(q) for q in queries]

    def _prompt_noise(self, p: float, q: Query) -> float:
        """P(A) with `logprob_noise`: N(0, s^2) noise added to its logit, fixed per prompt.

        The noise depends on the prompt (not on the sample index), so repeated samples of
        one prompt share it and only new prompts average it out, as with a real model.
        """
        if not self.logprob_noise:
            return p
        rng = np.random.default_rng(stable_seed("logprob_noise", self.seed, q.messages))
        logit = np.log(max(p, 1e-12)) - np.log(max(1.0 - p, 1e-12))
        return float(expit(logit + rng.normal(scale=self.logprob_noise)))

    def _answer_one(self, q: Query) -> Answer:
        rng = np.random.default_rng(
            stable_seed(self.seed, q.messages, q.option_a, q.option_b, q.mode, q.sample_index)
        )
        refused = rng.random() < self.refusal_rate
        p_true = self._prompt_noise(self.p_first(q.option_a, q.option_b, q.template), q)
        p_a = self.position_bias + (1 - self.position_bias) * p_true
        if q.mode == "logprob":
            if refused:
                return Answer(p_a=0.5, mass=0.0)
            return Answer(p_a=float(p_a), mass=1.0)
        if refused:
            return Answer(text=REFUSAL_TEXT)
        return Answer(text=q.labels[0] if rng.random() < p_a else q.labels[1])


class RandomAgent(_SimAgent):
    """Answers every query with a fair coin: the chance-level baseline."""

    def p_first(self, option_a: str, option_b: str, template: str = "default") -> float:
        return 0.5


class ThurstoneParams(SimParams):
    """`sim/thurstone?...`: also `rps`, the share of outcomes in an intransitive cycle."""

    rps: Number = Field(0.0, ge=0, le=1)


class ThurstoneAgent(_SimAgent):
    """Hidden utilities N(mu, sigma^2) per outcome, drawn from the seed and the text.

    mu ~ N(0, 1) and sigma ~ Uniform(0.2, 1.0); drawing per text keeps an outcome's
    utility the same whatever set or order it appears in. `rps=F` plants intransitivity:
    a share F of the outcomes (chosen by text) sit at random angles on a circle and, among
    themselves, prefer by P(a > b) = Phi(RPS_STRENGTH * sin(angle_a - angle_b)), a
    rock-paper-scissors cycle (a quarter of the triads inside the block cycle).
    """

    Params: type[SimParams] = ThurstoneParams
    RPS_STRENGTH = 3.0

    def __init__(self, kind: str, params: dict[str, str], seed: int = 0) -> None:
        super().__init__(kind, params, seed)
        self.rps = self.settings.rps
        self._utilities: dict[str, tuple[float, float]] = {}  # a text's draw, made once

    def rps_angle(self, text: str) -> float | None:
        """The outcome's angle on the intransitive circle, None outside the block."""
        if not self.rps:
            return None
        u_member, u_angle = np.random.default_rng(stable_seed("rps", self.seed, text)).random(2)
        return float(2 * np.pi * u_angle) if u_member < self.rps else None

    def _utility(self, text: str) -> tuple[float, float]:
        known = self._utilities.get(text)
        if known is None:
            rng = np.random.default_rng(stable_seed("utility", self.seed, text))
            known = self._utilities[text] = (float(rng.normal()), float(rng.uniform(0.2, 1.0)))
        return known

    def p_first(self, option_a: str, option_b: str, template: str = "default") -> float:
        mu_a, s_a = self._utility(option_a)
        mu_b, s_b = self._utility(option_b)
        shift = self.template_offset(option_a, template) - self.template_offset(option_b, template)
        angle_a, angle_b = self.rps_angle(option_a), self.rps_angle(option_b)
        if angle_a is not None and angle_b is not None:
            return float(ndtr(self.RPS_STRENGTH * np.sin(angle_a - angle_b) + shift))
        return float(ndtr((mu_a - mu_b + shift) / np.hypot(s_a, s_b)))

    def truth(self, outcomes: Sequence[str]) -> pd.DataFrame:
        """Hidden utilities as a table with columns id, mean, sigma (and rps_block)."""
        rows = [self._utility(text) for text in outcomes]
        table = pd.DataFrame(
            {
                "id": range(len(rows)),
                "mean": [r[0] for r in rows],
                "sigma": [r[1] for r in rows],
            }
        )
        if self.rps:
            table["rps_block"] = [self.rps_angle(text) is not None for text in outcomes]
        return table


def make_sim(name: str, params: dict[str, str], seed: int = 0, **_: object) -> _SimAgent:
    """Factory for `sim/<agent>`: the agent class comes from registry.SIM_AGENTS."""
    if name not in SIM_AGENTS:
        hint = did_you_mean(name, SIM_AGENTS, n=1, show=lambda k: f"sim/{k}")
        raise UnknownModelError(
            f"unknown synthetic agent sim/{name}; {hint}known: "
            + ", ".join(f"sim/{k}" for k in sorted(SIM_AGENTS))
        )
    return SIM_AGENTS[name](name, params, seed=seed)
