"""A planted non-partisan agent for the political analysis.

`sim/nonpartisan?strength=..`: on its own (no persona) its utilities over the policies
follow an axis that is exactly uncorrelated with the left/right coding of policies.yaml:
a seeded preference per topic (it cares about some issue areas, say transport or
health, whichever side proposes the policy) plus a small per-policy part (sd 0.3 of the
topic part: cost, practicality), residualised on the coded lean over the whole dataset
and scaled to unit variance. Every topic holds left and right policies, so a subset
that takes both sides of each topic stays close to uncorrelated too. Under a persona
of personas.yaml it answers as `sim/partisan` does (the persona's coded lean), so a
political run has partisan agents around it.
The analysis must not place it at either pole, and its lean score must cover 0.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from valuescope.agents.quantities import PartisanAgent
from valuescope.common.seeds import stable_seed


@lru_cache(maxsize=8)
def _axis(seed: int) -> dict[str, float]:
    """Policy text -> the agent's own axis (mean 0, sd 1, zero correlation with lean)."""
    from valuescope.experiments.political import load_policies

    policies = load_policies()
    topics = sorted({p.topic for p in policies})
    rng = np.random.default_rng(stable_seed("nonpartisan", seed))
    topic_effect = dict(zip(topics, rng.normal(size=len(topics)), strict=True))
    raw = np.array([topic_effect[p.topic] + 0.3 * rng.normal() for p in policies])
    lean = np.array([p.lean for p in policies])
    design = np.column_stack([np.ones_like(lean), lean])
    coef, *_ = np.linalg.lstsq(design, raw, rcond=None)
    resid = raw - design @ coef
    resid /= resid.std()
    return {p.text: float(r) for p, r in zip(policies, resid, strict=True)}


class NonPartisanAgent(PartisanAgent):
    """Utility = strength * axis(policy) without a persona; partisan under one."""

    def utility(self, text: str) -> float:
        from valuescope.experiments.political import persona_lean

        if self._persona and persona_lean(self._persona) is not None:
            return super().utility(text)
        value = _axis(self.seed).get(text.strip())
        return self._fallback(text) if value is None else self.strength * value


def planted_utilities(agent: PartisanAgent, texts: list[str], persona: str = "") -> list[float]:
    """The planted utilities of `texts` as the agent holds them under `persona` (the
    system-message text; "" for none), without asking it any question."""
    saved = agent._persona
    agent._persona = persona
    try:
        return [agent.utility(t) for t in texts]
    finally:
        agent._persona = saved
