"""Bradley-Terry: P(i > j) = sigmoid(u_i - u_j), the logistic baseline."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, log_expit

from valuescope.fit._threads import single_threaded_blas
from valuescope.fit._validation import check_pairs
from valuescope.fit.thurstonian import ConvergenceWarning


@dataclass
class BradleyTerryResult:
    """Fitted Bradley-Terry scores.

    `mean` is standardised (mean 0, std 1); `scores` keeps the logit scale that
    `predict` uses. `sigma` is zero: the model has no per-outcome spread.
    """

    mean: np.ndarray
    sigma: np.ndarray
    scores: np.ndarray
    converged: bool
    n_iter: int
    loss: float

    def predict(self, pairs: np.ndarray) -> np.ndarray:
        """Predicted P(first > second) for an (E, 2) array of outcome ids."""
        pairs = np.asarray(pairs, dtype=np.int64)
        return expit(self.scores[pairs[:, 0]] - self.scores[pairs[:, 1]])


def _objective(theta, a, b, p, w, n, alpha):
    d = theta[a] - theta[b]
    nll = -np.sum(w * (p * log_expit(d) + (1.0 - p) * log_expit(-d)))
    g = w * (expit(d) - p)
    grad = np.bincount(a, g, minlength=n) - np.bincount(b, g, minlength=n)
    return float(nll + 0.5 * alpha * theta @ theta), grad + alpha * theta


def fit_bradley_terry(
    pairs: np.ndarray,
    p: np.ndarray,
    n_outcomes: int,
    *,
    weights: np.ndarray | None = None,
    alpha: float = 0.1,
    max_iter: int = 2000,
    check_input: bool = True,
) -> BradleyTerryResult:
    """Fit Bradley-Terry scores to soft pairwise preferences (same inputs as Thurstonian)."""
    if check_input:
        pairs, p = check_pairs(pairs, p, n_outcomes)
    n = int(n_outcomes)
    w = np.ones(len(p)) if weights is None else np.asarray(weights, dtype=np.float64)
    with single_threaded_blas():
        res = minimize(
            _objective,
            np.zeros(n),
            args=(pairs[:, 0], pairs[:, 1], p, w, n, alpha),
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": max_iter, "gtol": 1e-7, "ftol": 1e-12},
        )
    converged = bool(res.success) or float(np.max(np.abs(res.jac))) < 1e-3
    if not converged:
        warnings.warn(
            f"Bradley-Terry fit did not converge in {max_iter} iterations ({res.message}); "
            "raise max_iter",
            ConvergenceWarning,
            stacklevel=2,
        )
    scores = res.x - res.x.mean()
    sd = float(np.std(scores)) or 1.0
    return BradleyTerryResult(
        mean=scores / sd,
        sigma=np.zeros(n),
        scores=scores,
        converged=converged,
        n_iter=int(res.nit),
        loss=float(res.fun) / max(float(w.sum()), 1.0),
    )
