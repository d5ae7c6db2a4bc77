"""Bootstrap intervals for utilities and for metrics computed from a fit."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from valuescope.fit.thurstonian import fit_thurstonian


@dataclass
class BootstrapResult:
    """Bootstrap replicates of standardised means (shape (B, N)) and of extra statistics."""

    means: np.ndarray
    stats: dict[str, np.ndarray]

    def interval(self, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
        """Percentile interval of every outcome's mean."""
        lo = 100 * (1 - level) / 2
        return np.percentile(self.means, lo, axis=0), np.percentile(self.means, 100 - lo, axis=0)

    def stat_interval(self, name: str, level: float = 0.95) -> tuple[float, float]:
        """Percentile interval of one extra statistic."""
        values = self.stats[name]
        values = values[np.isfinite(values)]
        if values.size == 0:
            return float("nan"), float("nan")
        lo = 100 * (1 - level) / 2
        return float(np.percentile(values, lo)), float(np.percentile(values, 100 - lo))


def bootstrap_thurstonian(
    pairs: np.ndarray,
    p: np.ndarray,
    n_outcomes: int,
    *,
    n_boot: int = 30,
    seed: int = 0,
    init: np.ndarray | None = None,
    statistics: dict[str, Callable] | None = None,
    **fit_options,
) -> BootstrapResult:
    """Refit on pairs resampled with replacement; `statistics` map name -> f(result)."""
    rng = np.random.default_rng(seed)
    pairs = np.asarray(pairs, dtype=np.int64)
    p = np.asarray(p, dtype=np.float64)
    means = np.empty((n_boot, n_outcomes))
    stats = {name: np.empty(n_boot) for name in (statistics or {})}
    for k in range(n_boot):
        idx = rng.integers(0, len(p), len(p))
        fit = fit_thurstonian(
            pairs[idx], p[idx], n_outcomes, init=init, check_input=False, **fit_options
        )
        means[k] = fit.mean
        for name, fn in (statistics or {}).items():
            stats[name][k] = fn(fit)
    return BootstrapResult(means=means, stats=stats)


def percentile_interval(values: np.ndarray, lo: float) -> list[float] | None:
    """Percentile interval [lo-th, (100 - lo)-th percentile] of the finite replicates.

    Not stretched to hold a point estimate: a bootstrap distribution that sits beside its
    estimate signals a biased statistic, and hiding that misleads; use `basic_interval`
    for such statistics.
    """
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    return [float(np.percentile(values, lo)), float(np.percentile(values, 100 - lo))]


def basic_interval(values: np.ndarray, lo: float, estimate: float) -> list[float] | None:
    """Basic (reflected) bootstrap interval [2 t - q_hi, 2 t - q_lo] around estimate t.

    It subtracts the bootstrap's own bias: when refits sit low of the estimate (a spread
    over few entities, say), the interval moves up by as much, instead of being stretched.
    """
    q = percentile_interval(values, lo)
    if q is None or not np.isfinite(estimate):
        return None
    return [float(2 * estimate - q[1]), float(2 * estimate - q[0])]
