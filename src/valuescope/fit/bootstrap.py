"""Bootstrap intervals for utilities and for metrics computed from a fit.

Each replicate refits the model on pairs drawn with replacement, which
`scipy.stats.bootstrap` (one statistic of fixed data) does not do; the intervals of the
refits come from `valuescope.stats`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from valuescope.fit.thurstonian import fit_thurstonian
from valuescope.stats import percentile_interval, resample_indices


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
        """Percentile interval of one extra statistic (NaN, NaN when none is finite)."""
        lo, hi, _ = percentile_interval(self.stats[name], level)
        return (float("nan"), float("nan")) if lo is None else (lo, hi)


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
    pairs = np.asarray(pairs, dtype=np.int64)
    p = np.asarray(p, dtype=np.float64)
    means = np.empty((n_boot, n_outcomes))
    stats = {name: np.empty(n_boot) for name in (statistics or {})}
    for k, idx in enumerate(resample_indices(len(p), n_boot, seed)):
        fit = fit_thurstonian(
            pairs[idx], p[idx], n_outcomes, init=init, check_input=False, **fit_options
        )
        means[k] = fit.mean
        for name, fn in (statistics or {}).items():
            stats[name][k] = fn(fit)
    return BootstrapResult(means=means, stats=stats)
