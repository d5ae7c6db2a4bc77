"""Synthetic agents with planted structure for the quantity analyses.

- `sim/exchange`: utility in quantity (log, or sqrt/linear to violate the analysis's
  log model) with hidden per-entity worth, and log money utility (exchange rates);
- `sim/hyperbolic?k=..` and `sim/exponential?delta=..`: money discounted over the delay
  hyperbolically or exponentially, then valued by a money utility
  (`utility=log|sqrt|linear|cara`) (time discounting);
- `sim/partisan?lean=..`: utilities over policies that follow a planted left/right lean,
  and follow a persona's coded lean when the system message carries one (political).

Each maps outcome texts to structure with the parsers of its analysis (the texts are
generated from that analysis's templates, so parsing is exact); a text it cannot parse
gets a seeded random utility, as `sim/thurstone` would give it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, get_args

import numpy as np
import pandas as pd
from pydantic import Field
from scipy.special import ndtr

from valuescope.common.seeds import stable_seed
from valuescope.models.base import Answer, Query
from valuescope.models.params import Number
from valuescope.models.sim import SimParams, _SimAgent

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


def _quantity_curve(kind: str) -> tuple:
    """(f, f inverse) of a planted utility shape in the quantity z = N * worth.

    log: f(z) = ln z. sqrt and linear are rescaled so that f(1) = 0 and f(10^6) = ln 10^6,
    as for log: the same utility range over the grid, a different shape inside it.
    """
    top = np.log(QUANTITY_TOP)
    if kind == "log":
        return np.log, np.exp
    if kind == "sqrt":
        c = top / (np.sqrt(QUANTITY_TOP) - 1)
        return (lambda z: c * (np.sqrt(z) - 1)), (lambda u: (u / c + 1) ** 2)
    c = top / (QUANTITY_TOP - 1)
    return (lambda z: c * (z - 1)), (lambda u: u / c + 1)


QUANTITY_TOP = 1e6
DOLLAR_SLOPE = 0.75  # s_$ of the planted money utility


class ExchangeParams(SimParams):
    """`sim/exchange?...`: the planted worths, their scale and the shape in the quantity."""

    spread: Number = Field(1.0, ge=0, le=5, description="sd of the log worths")
    scale: Number = Field(0.3, ge=0, le=100, description="utility differences vs the noise")
    utility: Literal["log", "sqrt", "linear"] = "log"
    dollar: Number = Field(1000.0, ge=1e-3, le=1e9, description="dollars of one unit at w = 1")


class ExchangeAgent(_PlantedAgent):
    """U(N units of entity e) = scale * s_e * f(N * w_e); U($X) = scale * 0.75 * ln(X / D).

    Hidden worth ln w_e ~ N(0, spread^2) and slope s_e ~ Uniform(0.5, 1.0), drawn from
    the seed and the entity name; `scale` (default 0.3) sets utility differences against
    the noise (sigma 0.3). `utility` is the shape f in the quantity: `log` (default; the
    analysis's own model), `sqrt` or `linear` (planted violations, rescaled so f(1) = 0
    and f(10^6) = ln 10^6). Money utility is always logarithmic; `dollar` (D, default
    1000) is the dollar worth of one unit of an entity with w = 1.
    `dollar_worth(e)` is the planted X with U($X) = U(1 unit of e);
    `exchange_rate(x, y)` the planted units of x worth one unit of y.
    """

    Params: type[SimParams] = ExchangeParams

    def __init__(self, kind: str, params: dict[str, str], seed: int = 0) -> None:
        super().__init__(kind, params, seed)
        self.spread = self.settings.spread
        self.scale = self.settings.scale
        self.dollar = self.settings.dollar
        self.shape = self.settings.utility
        self._f, self._f_inv = _quantity_curve(self.shape)

    def entity_params(self, entity: str) -> tuple[float, float]:
        """(worth w_e, slope s_e) of one entity."""
        rng = np.random.default_rng(stable_seed("exchange", self.seed, entity))
        return float(np.exp(rng.normal(scale=self.spread))), float(rng.uniform(0.5, 1.0))

    def unit_utility(self, entity: str) -> float:
        """Planted utility of one unit of `entity` (before the scale)."""
        worth, slope = self.entity_params(entity)
        return slope * float(self._f(worth))

    def dollar_worth(self, entity: str) -> float:
        """Planted dollars with the utility of one unit of `entity`."""
        return self.dollar * float(np.exp(self.unit_utility(entity) / DOLLAR_SLOPE))

    def exchange_rate(self, entity: str, reference: str) -> float:
        """Planted units of `entity` worth one unit of `reference`."""
        w_x, s_x = self.entity_params(entity)
        return float(self._f_inv(self.unit_utility(reference) / s_x)) / w_x

    def utility(self, text: str) -> float:
        from valuescope.experiments.exchange_rates import parse_dollars, parse_quantity

        amount = parse_dollars(text)
        if amount is not None:
            return self.scale * DOLLAR_SLOPE * float(np.log(amount / self.dollar))
        parsed = parse_quantity(text)
        if parsed is None:
            return self._fallback(text)
        entity, n = parsed
        worth, slope = self.entity_params(entity)
        return self.scale * slope * float(self._f(n * worth))


MoneyUtility = Literal["log", "sqrt", "linear", "cara"]
MONEY_UTILITIES: tuple[str, ...] = get_args(MoneyUtility)
MONEY_UNIT = 1000.0  # dollars: the money utilities are functions of amount / MONEY_UNIT


def money_utility(kind: str, y: np.ndarray | float, risk: float = 1.0) -> np.ndarray:
    """u(y) of y = amount / MONEY_UNIT: ln y, sqrt y, y, or (1 - exp(-risk y)) / risk."""
    y = np.asarray(y, dtype=float)
    if kind == "log":
        return np.log(y)
    if kind == "sqrt":
        return np.sqrt(y)
    if kind == "linear":
        return y
    return -np.expm1(-risk * y) / risk


class DiscountParams(SimParams):
    """`sim/hyperbolic|exponential?...`: the money utility and its scale."""

    scale: Number = Field(0.3, ge=0, le=100, description="utility differences vs the noise")
    utility: MoneyUtility = "log"
    risk: Number = Field(1.0, ge=1e-3, le=100, description="CARA coefficient per $1,000")


class HyperbolicParams(DiscountParams):
    k: Number = Field(0.05, ge=0, le=100, description="hyperbolic discount rate per month")


class ExponentialParams(DiscountParams):
    delta: Number = Field(0.97, ge=1e-6, le=1, description="discount factor per month")


class PartisanParams(SimParams):
    lean: Number = Field(0.0, ge=-1, le=1, description="-1 left .. +1 right")
    strength: Number = Field(2.0, ge=0, le=20)


class _DiscountAgent(_PlantedAgent):
    """U($x after t months) = scale * u(x d(t) / $1,000): discounted money, then valued.

    The planted discount function d works on money (x later is worth x d(t) now), so
    the indifference multiplier at delay t is 1 / d(t) whatever the money utility u:
    `utility=log|sqrt|linear|cara` (default log; `risk` is the CARA coefficient per
    $1,000, default 1). `scale` (default 0.3) sets utility differences against the noise
    (sigma 0.3).
    """

    Params: type[SimParams] = DiscountParams

    def __init__(self, kind: str, params: dict[str, str], seed: int = 0) -> None:
        super().__init__(kind, params, seed)
        self.scale = self.settings.scale
        self.money = self.settings.utility
        self.risk = self.settings.risk

    def discount(self, months: float) -> float:
        raise NotImplementedError

    def utility(self, text: str) -> float:
        from valuescope.experiments.time_discounting import parse_payment

        parsed = parse_payment(text)
        if parsed is None:
            return self._fallback(text)
        amount, months = parsed
        y = amount * self.discount(months) / MONEY_UNIT
        return self.scale * float(money_utility(self.money, y, self.risk))


class HyperbolicAgent(_DiscountAgent):
    """d(t) = 1 / (1 + k t), t in months (`k` per month, default 0.05)."""

    Params: type[SimParams] = HyperbolicParams

    def __init__(self, kind: str, params: dict[str, str], seed: int = 0) -> None:
        super().__init__(kind, params, seed)
        self.k = self.settings.k

    def discount(self, months: float) -> float:
        return 1.0 / (1.0 + self.k * months)


class ExponentialAgent(_DiscountAgent):
    """d(t) = delta ** t, t in months (`delta` per month, default 0.97)."""

    Params: type[SimParams] = ExponentialParams

    def __init__(self, kind: str, params: dict[str, str], seed: int = 0) -> None:
        super().__init__(kind, params, seed)
        self.delta = self.settings.delta

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

    Params: type[SimParams] = PartisanParams

    def __init__(self, kind: str, params: dict[str, str], seed: int = 0) -> None:
        super().__init__(kind, params, seed)
        self.lean = self.settings.lean
        self.strength = self.settings.strength
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
