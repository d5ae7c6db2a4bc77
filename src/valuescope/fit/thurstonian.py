"""Thurstonian utilities: each outcome i has utility N(mu_i, sigma_i^2).

P(i > j) = Phi((mu_i - mu_j) / sqrt(sigma_i^2 + sigma_j^2)). Fitted by maximising the
soft-label log-likelihood with L-BFGS and an analytic gradient.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize
from scipy.special import log_ndtr, ndtr

from valuescope.fit._threads import single_threaded_blas
from valuescope.fit._validation import check_pairs

_LOG_SQRT_2PI = 0.5 * np.log(2 * np.pi)


class ConvergenceWarning(UserWarning):
    """The optimiser stopped before converging; raise `max_iter` or check the data."""


@dataclass
class ThurstonianResult:
    """Fitted Thurstonian model.

    `mean` and `sigma` are on the standardised scale (mean 0, std 1 across outcomes);
    `predict` is invariant to that choice of scale.
    """

    mean: np.ndarray
    sigma: np.ndarray
    converged: bool
    n_iter: int
    loss: float
    raw_params: np.ndarray = field(repr=False)

    def predict(self, pairs: np.ndarray) -> np.ndarray:
        """Predicted P(first > second) for an (E, 2) array of outcome ids."""
        pairs = np.asarray(pairs, dtype=np.int64)
        a, b = pairs[:, 0], pairs[:, 1]
        scale = np.sqrt(self.sigma[a] ** 2 + self.sigma[b] ** 2)
        return ndtr((self.mean[a] - self.mean[b]) / scale)


def _log_cdf_pair(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log Phi(z) and log Phi(-z) with one `ndtr` call where it is accurate.

    The smaller of Phi(z) and Phi(-z) is computed directly (never cancels); the larger
    is log1p of minus the smaller. Only far tails (|z| > 8), where the small side
    underflows, fall back to `log_ndtr`.
    """
    small = ndtr(-np.abs(z))  # min(Phi(z), Phi(-z))
    log_small = np.log(np.maximum(small, 1e-300))
    log_large = np.log1p(-small)
    tail = np.abs(z) > 8.0
    if tail.any():
        log_small[tail] = log_ndtr(-np.abs(z[tail]))
    pos = z >= 0
    log_q = np.where(pos, log_large, log_small)
    log_1mq = np.where(pos, log_small, log_large)
    return log_q, log_1mq


def _objective(
    theta: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    p: np.ndarray,
    w: np.ndarray,
    n: int,
    alpha: float,
    learn_sigma: bool,
) -> tuple[float, np.ndarray]:
    """Negative penalised log-likelihood and its gradient."""
    mu = theta[:n]
    log_sigma = theta[n:] if learn_sigma else np.zeros(n)
    var = np.exp(2.0 * log_sigma)
    diff = mu[a] - mu[b]
    s2 = var[a] + var[b]
    s = np.sqrt(s2)
    z = diff / s
    log_q, log_1mq = _log_cdf_pair(z)
    nll = -np.sum(w * (p * log_q + (1.0 - p) * log_1mq))
    log_phi = -0.5 * z * z - _LOG_SQRT_2PI
    dz = -w * (p * np.exp(log_phi - log_q) - (1.0 - p) * np.exp(log_phi - log_1mq))
    g_mu = np.bincount(a, dz / s, minlength=n) - np.bincount(b, dz / s, minlength=n)
    nll += 0.5 * alpha * np.dot(mu, mu)
    g_mu += alpha * mu
    if not learn_sigma:
        return float(nll), g_mu
    common = -dz * z / s2
    g_ls = np.bincount(a, common * var[a], minlength=n) + np.bincount(
        b, common * var[b], minlength=n
    )
    nll += 0.5 * alpha * np.dot(log_sigma, log_sigma)
    g_ls += alpha * log_sigma
    return float(nll), np.concatenate([g_mu, g_ls])


def probit_start(
    a: np.ndarray, b: np.ndarray, p: np.ndarray, w: np.ndarray, n: int, alpha: float
) -> np.ndarray:
    """Means from least squares on probit-transformed preferences (sigmas all 1).

    Solves (L + alpha I) mu = B' y with y = sqrt(2) Phi^-1(p) clipped, L the weighted
    comparison-graph Laplacian, by conjugate gradients on the sparse system: a start
    close to the optimum, so L-BFGS needs far fewer iterations.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.linalg import cg
    from scipy.special import ndtri

    y = np.sqrt(2.0) * ndtri(np.clip(p, 0.02, 0.98))
    rhs = np.bincount(a, w * y, minlength=n) - np.bincount(b, w * y, minlength=n)
    deg = np.bincount(a, w, minlength=n) + np.bincount(b, w, minlength=n)
    rows = np.concatenate([a, b])
    cols = np.concatenate([b, a])
    lap = coo_matrix((-np.concatenate([w, w]), (rows, cols)), shape=(n, n)).tocsr()
    lap.setdiag(deg + max(alpha, 1e-6))
    mu, _ = cg(lap, rhs, rtol=1e-6, maxiter=200, M=_jacobi(deg + max(alpha, 1e-6)))
    return mu


def _jacobi(diag: np.ndarray):
    from scipy.sparse.linalg import LinearOperator

    inv = 1.0 / diag
    return LinearOperator((len(diag), len(diag)), matvec=lambda v: inv * v)


def fit_thurstonian(
    pairs: np.ndarray,
    p: np.ndarray,
    n_outcomes: int,
    *,
    weights: np.ndarray | None = None,
    learn_sigma: bool = True,
    alpha: float = 0.1,
    max_iter: int = 2000,
    tol: float = 1e-7,
    init: np.ndarray | None = None,
    check_input: bool = True,
) -> ThurstonianResult:
    """Fit Thurstonian utilities to soft pairwise preferences.

    Parameters
    ----------
    pairs : array of shape (E, 2)
        Outcome ids 0..n_outcomes-1; row e compares pairs[e, 0] with pairs[e, 1].
    p : array of shape (E,)
        Observed probability that the first outcome is preferred.
    n_outcomes : int
        Number of outcomes N.
    weights : array of shape (E,), default=None
        Per-pair weight in the likelihood (for example the number of answers).
    learn_sigma : bool, default=True
        Fit one sigma per outcome; False fixes all sigmas equal (Thurstone case V).
    alpha : float, default=0.1
        Strength of the weak Gaussian prior on mu and log sigma; it keeps estimates
        finite when answers are unanimous.
    max_iter : int, default=2000
        L-BFGS iteration limit.
    init : array of shape (2N,) or (N,), default=None
        Warm start (raw parameters of an earlier fit).
    """
    if check_input:
        pairs, p = check_pairs(pairs, p, n_outcomes)
    n = int(n_outcomes)
    w = np.ones(len(p)) if weights is None else np.asarray(weights, dtype=np.float64)
    size = 2 * n if learn_sigma else n
    a, b = pairs[:, 0], pairs[:, 1]
    if init is None:
        x0 = np.zeros(size)
        if len(p):
            x0[:n] = probit_start(a, b, p, w, n, alpha)
    else:
        x0 = np.asarray(init, dtype=np.float64)[:size].copy()
    args = (a, b, p, w, n, alpha, learn_sigma)
    with single_threaded_blas():
        res = _lbfgs(x0, args, max_iter, tol)
        n_iter = int(res.nit)
        for _ in range(_RESTARTS):
            if _gradient(res) <= _RESTART_GRAD or n_iter >= max_iter:
                break
            # a stall: L-BFGS's relative-reduction stop fired far from a stationary point
            # (seen on incoherent data); a fresh start from there, with its curvature
            # memory cleared, goes on to the optimum
            res = _lbfgs(res.x, args, max_iter - n_iter, tol)
            n_iter += int(res.nit)
    converged = bool(res.success) or _flat_enough(res)
    if not converged:
        warnings.warn(
            f"Thurstonian fit did not converge in {max_iter} iterations ({res.message}); "
            "raise max_iter or check the data",
            ConvergenceWarning,
            stacklevel=2,
        )
    mu = res.x[:n]
    sigma = np.exp(res.x[n:]) if learn_sigma else np.ones(n)
    mean, sigma = _standardise(mu, sigma)
    return ThurstonianResult(
        mean=mean,
        sigma=sigma,
        converged=converged,
        n_iter=n_iter,
        loss=float(res.fun) / max(float(w.sum()), 1.0),
        raw_params=res.x.copy(),
    )


# A stop whose largest gradient entry exceeds this is restarted (ordinary stops sit below
# 0.01 on fits of 10 to 20000 pairs), at most _RESTARTS times.
_RESTART_GRAD = 0.05
_RESTARTS = 2


def _lbfgs(x0: np.ndarray, args: tuple, max_iter: int, tol: float):
    return minimize(
        _objective,
        x0,
        args=args,
        jac=True,
        method="L-BFGS-B",
        # ftol 1e-9: the held-out loss has settled to 1e-6 by then (docs/benchmarks.md)
        options={"maxiter": max_iter, "gtol": tol, "ftol": 1e-9},
    )


def _gradient(res) -> float:
    grad = getattr(res, "jac", None)
    return float(np.max(np.abs(grad))) if grad is not None and len(grad) else 0.0


def _flat_enough(res) -> bool:
    """L-BFGS sometimes stops in the line search at an optimum; accept a tiny gradient."""
    grad = getattr(res, "jac", None)
    return grad is not None and float(np.max(np.abs(grad))) < 1e-3


def _standardise(mu: np.ndarray, sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shift to mean 0 and scale to std 1; sigma goes onto the same scale."""
    sd = float(np.std(mu))
    if sd <= 1e-12:
        return mu - mu.mean(), sigma
    return (mu - mu.mean()) / sd, sigma / sd
