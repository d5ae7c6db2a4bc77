"""Planted agents for the utility-maximization analysis (`data/open_questions.yaml`).

`valuescope.models.registry.SIM_AGENTS` names each. Each has hidden Thurstonian utilities
(as sim/thurstone) and answers the dataset's open questions in free text:

- `sim/maximiser`: names its highest-utility candidate. `style=reversed` spells it
  backwards, which neither exact nor fuzzy matching reads (the judge path).
- `sim/utility-ignorer`: names a uniformly random candidate, whatever its utilities.
- `sim/off-list?rate=R`: with probability R (default 1) answers with text that names no
  candidate, else names its best one.

Asked the analysis's judge question, each names the candidate that the answer spells,
forwards or backwards, or 0 for none.
"""

from __future__ import annotations

import re
from typing import Literal

import numpy as np
from pydantic import Field

from valuescope.common.seeds import stable_seed
from valuescope.models.params import Number
from valuescope.models.sim import SimParams, ThurstoneAgent, ThurstoneParams

OFF_LIST_REPLY = "Honestly, something that is on nobody's list at all."


def _norm(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


class _OpenAnswerAgent(ThurstoneAgent):
    """A Thurstonian agent that answers the open questions by `pick`."""

    def pick(self, candidates: list[str], rng: np.random.Generator) -> str:
        raise NotImplementedError

    def _generate_one(self, messages: tuple[tuple[str, str], ...], seed: int) -> str:
        from valuescope.experiments import maximization

        user = next((c for role, c in reversed(messages) if role == "user"), "")
        if "Their answer was:" in user:
            return self._judge(user)
        q = maximization.question_for(user)
        if q is None:
            return super()._generate_one(messages, seed)
        rng = np.random.default_rng(stable_seed("open-answer", self.seed, messages, seed))
        return f"I would choose {self.pick(q['candidates'], rng)}."

    def _judge(self, user: str) -> str:
        reply = user.split("Their answer was:", 1)[1].split("\n", 1)[0]
        spelled = {_norm(reply), _norm(reply[::-1])}
        lines = re.findall(r"^(\d+)\. (.+)$", user, flags=re.M)
        for number, text in lines:
            if number != "0" and any(f" {_norm(text)} " in f" {s} " for s in spelled):
                return number
        return "0"


class MaximiserParams(ThurstoneParams):
    style: Literal["plain", "reversed"] = Field("plain", description="reversed: spelled backwards")


class OffListParams(ThurstoneParams):
    rate: Number = Field(1.0, ge=0, le=1, description="share of answers naming no candidate")


class Maximiser(_OpenAnswerAgent):
    """Names its highest-utility candidate (`style=reversed` spells it backwards)."""

    Params: type[SimParams] = MaximiserParams

    def __init__(self, kind: str, params: dict[str, str], seed: int = 0) -> None:
        super().__init__(kind, params, seed)
        self.style = self.settings.style

    def pick(self, candidates: list[str], rng: np.random.Generator) -> str:
        best = max(candidates, key=lambda c: self._utility(c)[0])
        return best[::-1] if self.style == "reversed" else best


class UtilityIgnorer(_OpenAnswerAgent):
    """Names a uniformly random candidate, whatever its utilities."""

    def pick(self, candidates: list[str], rng: np.random.Generator) -> str:
        return candidates[int(rng.integers(len(candidates)))]


class OffList(_OpenAnswerAgent):
    """With probability `rate` (default 1) an answer naming no candidate; else its best."""

    Params: type[SimParams] = OffListParams

    def __init__(self, kind: str, params: dict[str, str], seed: int = 0) -> None:
        super().__init__(kind, params, seed)
        self.rate = self.settings.rate

    def pick(self, candidates: list[str], rng: np.random.Generator) -> str:
        if rng.random() < self.rate:
            return OFF_LIST_REPLY
        return max(candidates, key=lambda c: self._utility(c)[0])
