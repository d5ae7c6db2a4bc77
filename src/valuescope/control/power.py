"""How many held-out pairs the assembly needs for a tight agreement interval.

Agreement on a held-out pair is 1 when the model's order-averaged preference (both
orders asked) sides with the assembly's majority, else 0. Over n decided pairs the 95%
t half-width is t(0.975, n - 1) * sqrt(p (1 - p) / n), at most (p = 1/2)
t * 0.5 / sqrt(n): 120 held-out pairs (the default, 480 pairs x 0.25) give 0.090, and
still under 0.10 when up to a sixth of them are tied in the assembly (100 left: 0.099).
"""

from __future__ import annotations

import numpy as np
from scipy import stats


def planned_halfwidth(n_pairs: int, p: float = 0.5, level: float = 0.95) -> float:
    """Worst-case (p = 1/2) or given-p half-width of the agreement t-interval."""
    if n_pairs < 2:
        return float("inf")
    return float(stats.t.ppf(0.5 + level / 2, n_pairs - 1) * np.sqrt(p * (1 - p) / n_pairs))


def agreement_interval(p_model: np.ndarray, p_assembly: np.ndarray, level: float = 0.95) -> dict:
    """Share of pairs (assembly not tied) where the model sides with the majority, t-interval."""
    p_model, p_assembly = np.asarray(p_model, float), np.asarray(p_assembly, float)
    decided = p_assembly != 0.5
    hit = np.where(p_model == 0.5, 0.5, ((p_model - 0.5) * (p_assembly - 0.5) > 0) * 1.0)
    hit = hit[decided]
    n = len(hit)
    mean = float(hit.mean()) if n else float("nan")
    half = float(stats.t.ppf(0.5 + level / 2, n - 1) * stats.sem(hit)) if n > 1 else float("inf")
    return {
        "value": mean,
        "ci_low": mean - half,
        "ci_high": mean + half,
        "half_width": half,
        "n": n,
    }
