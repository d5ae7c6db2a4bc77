"""Synthetic agents with planted structure for the quantity analyses.

- `sim/exchange`: log utility in quantity with hidden per-entity worth (exchange rates);
- `sim/hyperbolic?k=..` and `sim/exponential?delta=..`: log utility of money, discounted
  over the delay hyperbolically or exponentially (time discounting);
- `sim/partisan?lean=..`: utilities over policies that follow a planted left/right lean,
  and follow a persona's coded lean when the system message carries one (political).

Each maps outcome texts to structure with the parsers of its analysis (the texts are
generated from that analysis's templates, so parsing is exact); a text it cannot parse
gets a seeded random utility, as `sim/thurstone` would give it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.special import ndtr

from valuescope.models.base import Answer, Query
from valuescope.models.sim import _AGENTS, _float_param, _SimAgent, stable_seed

SIGMA = 0.3  # noise of every planted utility (Thurstonian sigma)


class _PlantedAgent(_SimAgent):
    """Shared: p_first from a utility function, truth table from the same function."""

    def utility(self, text: str) -> float:
        raise NotImplementedError

    def _fallback(self, text: str) -> float:
        rng = np.random.default_rng(stable_seed("utility", self.seed, text))
        return float(rng.normal())

    def p_first(self, option_a: str, option_b: str, template: str = "default") -> float:
        shift = self.template_offset(option_a, template) - self.template_offset(option_b, template)
        diff = self.utility(option_a) - self.utility(option_b) + shift
        return float(ndtr(diff / (np.sqrt(2) * SIGMA)))

    def truth(self, outcomes: Sequence[str]) -> pd.DataFrame:
        """Planted utilities as a table with columns id, mean, sigma."""
        means = [self.utility(t) for t in outcomes]
        return pd.DataFrame({"id": range(len(means)), "mean": means, "sigma": [SIGMA] * len(means)})


class ExchangeAgent(_PlantedAgent):
    """U(N units of entity e) = scale * s_e * ln(N * w_e), hidden worth w_e and slope s_e.

    ln w_e ~ N(0, spread^2) and s_e ~ Uniform(0.5, 1.0), drawn from the seed and the
    entity name; `scale` (default 0.3) sets utility differences against the noise
    (sigma 0.3). N units of X are worth one unit of Y when U_X(N) = U_Y(1), that is
    N = exp(s_Y ln(w_Y) / s_X) / w_X: `exchange_rate(x, y)` returns that planted figure.
    """

    known_params = _SimAgent.known_params + ("spread", "scale")

    def __init__(self, kind: str, params: dict[str, str], seed: int = 0) -> None:
        super().__init__(kind, params, seed)
        self.spread = _float_param(params, "spread", 1.0, 0.0, 5.0)
        self.scale = _float_param(params, "scale", 0.3, 0.0, 100.0)

    def entity_params(self, entity: str) -> tuple[float, float]:
        """(worth w_e, slope s_e) of one entity."""
        rng = np.random.default_rng(stable_seed("exchange", self.seed, entity))
        return float(np.exp(rng.normal(scale=self.spread))), float(rng.uniform(0.5, 1.0))

    def exchange_rate(self, entity: str, reference: str) -> float:
        """Planted units of `entity` worth one unit of `reference`."""
        w_x, s_x = self.entity_params(entity)
        w_y, s_y = self.entity_params(reference)
        return float(np.exp(s_y * np.log(w_y) / s_x) / w_x)

    def utility(self, text: str) -> float:
        from valuescope.experiments.exchange_rates import parse_quantity

        parsed = parse_quantity(text)
        if parsed is None:
            return self._fallback(text)
        entity, n = parsed
        worth, slope = self.entity_params(entity)
        return self.scale * slope * float(np.log(n * worth))


class _DiscountAgent(_PlantedAgent):
    """U($x after t months) = scale * ln(x * d(t)) with a planted discount function d.

    `scale` (default 0.3) sets utility differences against the noise (sigma 0.3).
    """

    def __init__(self, kind: str, params: dict[str, str], seed: int = 0) -> None:
        super().__init__(kind, params, seed)
        self.scale = _float_param(params, "scale", 0.3, 0.0, 100.0)

    def discount(self, months: float) -> float:
        raise NotImplementedError

    def utility(self, text: str) -> float:
        from valuescope.experiments.time_discounting import parse_payment

        parsed = parse_payment(text)
        if parsed is None:
            return self._fallback(text)
        amount, months = parsed
        return self.scale * float(np.log(amount * self.discount(months)))


class HyperbolicAgent(_DiscountAgent):
    """d(t) = 1 / (1 + k t), t in months (`k` per month, default 0.05)."""

    known_params = _SimAgent.known_params + ("k", "scale")

    def __init__(self, kind: str, params: dict[str, str], seed: int = 0) -> None:
        super().__init__(kind, params, seed)
        self.k = _float_param(params, "k", 0.05, 0.0, 100.0)

    def discount(self, months: float) -> float:
        return 1.0 / (1.0 + self.k * months)


class ExponentialAgent(_DiscountAgent):
    """d(t) = delta ** t, t in months (`delta` per month, default 0.97)."""

    known_params = _SimAgent.known_params + ("delta", "scale")

    def __init__(self, kind: str, params: dict[str, str], seed: int = 0) -> None:
        super().__init__(kind, params, seed)
        self.delta = _float_param(params, "delta", 0.97, 1e-6, 1.0)

    def discount(self, months: float) -> float:
        return self.delta**months


class PartisanAgent(_PlantedAgent):
    """U(policy) = strength * L * lean(policy) + idiosyncratic N(0, 0.5^2) per policy.

    L is the planted `lean` (-1 left .. +1 right), or the coded lean of the persona in
    the system message when it is one of the dataset's personas. The idiosyncratic part
    is drawn from the seed and the text, so it is shared by all personas. `truth()` uses
    the persona of the last query answered (the run's persona; a fully cached rerun
    answers none, and then the agent's own lean is used).
    """

    known_params = _SimAgent.known_params + ("lean", "strength")

    def __init__(self, kind: str, params: dict[str, str], seed: int = 0) -> None:
        super().__init__(kind, params, seed)
        self.lean = _float_param(params, "lean", 0.0, -1.0, 1.0)
        self.strength = _float_param(params, "strength", 2.0, 0.0, 20.0)
        self._persona = ""

    def _answer_one(self, q: Query) -> Answer:
        self._persona = q.persona
        return super()._answer_one(q)

    def effective_lean(self, persona: str = "") -> float:
        """The lean the agent acts on under a persona (its own lean for none/unknown)."""
        from valuescope.experiments.political import persona_lean

        found = persona_lean(persona) if persona else None
        return self.lean if found is None else found

    def utility(self, text: str) -> float:
        from valuescope.experiments.political import policy_lean

        lean = policy_lean(text)
        if lean is None:
            return self._fallback(text)
        rng = np.random.default_rng(stable_seed("partisan", self.seed, text.strip()))
        own = self.effective_lean(self._persona)
        return self.strength * own * lean + 0.5 * float(rng.normal())


_AGENTS.update(
    {
        "exchange": ExchangeAgent,
        "hyperbolic": HyperbolicAgent,
        "exponential": ExponentialAgent,
        "partisan": PartisanAgent,
    }
)
