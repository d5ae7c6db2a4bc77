"""Information-based design: ask the pairs whose order is least certain; stop when settled.

Under the Thurstonian model an answer on pair (a, b) carries Fisher information
I_ab = m phi(z)^2 / (s^2 q (1 - q)) about the gap mu_a - mu_b (s^2 = sigma_a^2 + sigma_b^2,
z = gap / s, q = Phi(z), m answers). A diagonal Laplace approximation gives each mean a
variance v_i = 1 / (prior + sum of I over the pairs of i), so the order of a and b is
uncertain when |gap| / sqrt(v_a + v_b) is small. `select_batch` picks such pairs greedily,
shrinking v_a and v_b after each pick so one batch spreads over many outcomes.
`split_half_reliability` measures how much a rerun would move the utilities (the run's
stopping rule), `estimated_spearman` is the older change-between-fits estimate (kept for
the benchmarks that compare the two), and `needs_more_answers` marks pairs worth more
samples.
"""

from __future__ import annotations

import heapq
import warnings
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

from valuescope.design.pairs import (
    ENUMERATE_LIMIT,
    all_pair_codes,
    decode,
    pair_codes,
    sample_new_codes,
)
from valuescope.fit import ConvergenceWarning, fit_thurstonian
from valuescope.stats import correlation

# Candidate pairs scored per round when outcomes are too many to enumerate every pair.
CANDIDATES = 200_000
_INV_SQRT_2PI = 1.0 / np.sqrt(2.0 * np.pi)


def pair_information(
    mean: np.ndarray, sigma: np.ndarray, pairs: np.ndarray, answers: float | np.ndarray = 1.0
) -> np.ndarray:
    """Fisher information about mu_a - mu_b from `answers` answers on each pair."""
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    a, b = pairs[:, 0], pairs[:, 1]
    s2 = sigma[a] ** 2 + sigma[b] ** 2
    z = (mean[a] - mean[b]) / np.sqrt(s2)
    q = np.clip(ndtr(z), 1e-12, 1 - 1e-12)
    phi = _INV_SQRT_2PI * np.exp(-0.5 * z * z)
    return answers * phi * phi / (s2 * q * (1.0 - q))


def node_variance(
    mean: np.ndarray,
    sigma: np.ndarray,
    asked: np.ndarray,
    answers: float | np.ndarray = 1.0,
    prior: float = 0.1,
) -> np.ndarray:
    """Approximate posterior variance of each mean: 1 / (prior + information of its pairs)."""
    asked = np.asarray(asked, dtype=np.int64).reshape(-1, 2)
    info = pair_information(mean, sigma, asked, answers)
    n = len(mean)
    total = np.bincount(asked[:, 0], info, minlength=n) + np.bincount(asked[:, 1], info, n)
    return 1.0 / (prior + total)


def order_entropy(gap: np.ndarray, var_gap: np.ndarray) -> np.ndarray:
    """Entropy (nats) of the order of two outcomes whose gap is N(gap, var_gap)."""
    p = np.clip(ndtr(np.abs(gap) / np.sqrt(var_gap)), 0.5, 1.0 - 1e-15)
    return -(p * np.log(p) + (1.0 - p) * np.log1p(-p))


def candidate_pairs(
    n: int, asked: np.ndarray, excluded: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Pairs not asked and not held out: all of them, or a random sample for large n."""
    used = np.concatenate([pair_codes(asked, n), np.asarray(excluded, dtype=np.int64)])
    if n <= ENUMERATE_LIMIT:
        return decode(np.setdiff1d(all_pair_codes(n), used), n)
    return decode(sample_new_codes(n, CANDIDATES, used, rng), n)


def select_batch(
    mean: np.ndarray,
    asked: np.ndarray,
    excluded: np.ndarray,
    k: int,
    rng: np.random.Generator,
    *,
    sigma: np.ndarray | None = None,
    answers: float = 1.0,
    prior: float = 0.1,
) -> np.ndarray:
    """Choose k new pairs (not asked, not held out) whose order is least certain.

    Parameters
    ----------
    mean, sigma : arrays of shape (N,)
        Current fit (sigma defaults to ones: Thurstone case V).
    asked : array of shape (E, 2)
        Pairs already asked.
    excluded : array of int
        Pair codes never to ask (held-out pairs, as `pair_codes` writes them).
    k : int
        Pairs to return (fewer when fewer remain), rows sorted.
    answers : float, default=1.0
        Weight of one pair's answers against `prior` (1 matches `fit_thurstonian`, which
        gives every pair weight 1).
    prior : float, default=0.1
        Prior precision of each mean (the fitter's `alpha`).
    """
    n = len(mean)
    mean = np.asarray(mean, dtype=np.float64)
    sigma = np.ones(n) if sigma is None else np.asarray(sigma, dtype=np.float64)
    asked = np.asarray(asked, dtype=np.int64).reshape(-1, 2)
    cand = candidate_pairs(n, asked, excluded, rng)
    if len(cand) <= k:
        return cand
    var = node_variance(mean, sigma, asked, answers, prior)
    info = pair_information(mean, sigma, cand, answers)
    gap = mean[cand[:, 0]] - mean[cand[:, 1]]
    gap = gap * (1.0 + 1e-9 * rng.random(len(gap)))  # random tie-break
    chosen = _greedy(cand, gap, info, var, k)
    return cand[np.sort(chosen)]


def _greedy(
    cand: np.ndarray, gap: np.ndarray, info: np.ndarray, var: np.ndarray, k: int
) -> np.ndarray:
    """Greedy picks by order entropy; a pick shrinks its endpoints' variances.

    Scores only fall as variances shrink, so stale heap entries are re-scored lazily.
    """
    var = var.copy()
    score = order_entropy(gap, var[cand[:, 0]] + var[cand[:, 1]])
    top = np.argsort(-score, kind="stable")[: max(20 * k, 1000)]
    heap = [(-score[i], int(i)) for i in top]
    heapq.heapify(heap)
    chosen: list[int] = []
    while heap and len(chosen) < k:
        neg, i = heapq.heappop(heap)
        a, b = cand[i]
        now = float(order_entropy(gap[i], var[a] + var[b]))
        if heap and now < -heap[0][0] and now < -neg * (1 - 1e-12):
            heapq.heappush(heap, (-now, i))  # an endpoint gained information since scoring
            continue
        chosen.append(i)
        var[a] = 1.0 / (1.0 / var[a] + info[i])
        var[b] = 1.0 / (1.0 / var[b] + info[i])
    return np.asarray(chosen, dtype=np.int64)


def estimated_spearman(
    previous: np.ndarray,
    current: np.ndarray,
    n_previous: int,
    n_current: int,
    safety: float = 2.0,
) -> float:
    """Cautious Spearman of `current` with the truth, from how far the ranking moved.

    If estimates erred like noise shrinking as 1 / pairs, the rank disagreement left after
    n_current pairs would be the disagreement with the previous fit times
    n_previous / (n_current - n_previous). Adaptive designs and the prior break that
    assumption, so the disagreement is multiplied by `safety` as well (2 kept every
    measured run at or above its target; see docs/benchmarks.md).
    """
    if n_current <= n_previous:
        raise ValueError(f"n_current ({n_current}) must exceed n_previous ({n_previous})")
    moved = 1.0 - correlation(previous, current, "spearman")
    return 1.0 - safety * moved * n_previous / (n_current - n_previous)


@dataclass(frozen=True)
class Reliability:
    """Split-half test-retest reliability of a fit (Spearman-Brown corrected).

    `mean` and `sigma` are the reliabilities of the mean utilities and of the sigmas:
    2 r / (1 + r), with r the Spearman correlation between the fits of two random halves of
    the pairs, averaged over `splits` splits (`half_mean`, `half_sigma`). A rerun of the
    whole run is expected to correlate with this one at about `mean`; the correlation
    with the noise-free utilities is then about sqrt(mean), which is at least `mean`.
    """

    mean: float
    sigma: float
    half_mean: float
    half_sigma: float
    splits: int
    n_pairs: int


def spearman_brown(r: float) -> float:
    """Reliability of a measurement twice as long as one with reliability `r`.

    Negative r (halves that disagree: no reliability) maps into [-1, 0), never below -1.
    """
    r = float(np.clip(r, -1.0 / 3.0, 1.0))  # 2r / (1 + r) is -1 at r = -1/3
    return 2.0 * r / (1.0 + r)


def split_half_reliability(
    pairs: np.ndarray,
    p: np.ndarray,
    n: int,
    rng: np.random.Generator,
    *,
    splits: int = 2,
    weights: np.ndarray | None = None,
    init: np.ndarray | None = None,
) -> Reliability:
    """Fit two random halves of the answered pairs and correlate their utilities.

    Parameters
    ----------
    pairs : array of shape (E, 2)
        Answered pairs (checked already, as `fit_thurstonian(check_input=False)` expects).
    p : array of shape (E,)
        Observed P(first outcome preferred).
    n : int
        Number of outcomes.
    splits : int, default=2
        Independent random splits whose half-correlations are averaged (less noise in
        the estimate; each split costs two fits).
    weights : array of shape (E,), default=None
        Per-pair weights passed to the fitter.
    init : array, default=None
        Warm start for the half fits (the raw parameters of the fit to every pair).

    A constant half fit (a coin in logprob mode) has no ranking: its correlation counts
    as 0.
    """
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    p = np.asarray(p, dtype=np.float64)
    r_mean, r_sigma = [], []
    for _ in range(splits):
        order = rng.permutation(len(p))
        halves = (order[: len(p) // 2], order[len(p) // 2 :])
        fits = [_fit_part(pairs, p, n, idx, weights, init) for idx in halves]
        r_mean.append(_rank_r(fits[0].mean, fits[1].mean))
        r_sigma.append(_rank_r(fits[0].sigma, fits[1].sigma))
    half_mean, half_sigma = float(np.mean(r_mean)), float(np.mean(r_sigma))
    return Reliability(
        mean=spearman_brown(half_mean),
        sigma=spearman_brown(half_sigma),
        half_mean=half_mean,
        half_sigma=half_sigma,
        splits=splits,
        n_pairs=len(p),
    )


def reliability_of_halves(first, second, n_pairs: int) -> Reliability:
    """Reliability from two fits on independent halves of the answers (one split)."""
    half_mean = _rank_r(first.mean, second.mean)
    half_sigma = _rank_r(first.sigma, second.sigma)
    return Reliability(
        mean=spearman_brown(half_mean),
        sigma=spearman_brown(half_sigma),
        half_mean=half_mean,
        half_sigma=half_sigma,
        splits=1,
        n_pairs=n_pairs,
    )


def _fit_part(pairs, p, n, idx, weights, init):
    w = None if weights is None else np.asarray(weights)[idx]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # a half fit is only a probe
        return fit_thurstonian(pairs[idx], p[idx], n, weights=w, init=init, check_input=False)


def _rank_r(x: np.ndarray, y: np.ndarray) -> float:
    r = correlation(x, y, "spearman")
    return r if np.isfinite(r) else 0.0  # no ranking on a side (or under 3): no agreement


def needs_more_answers(p_first: np.ndarray) -> np.ndarray:
    """Pairs whose first answers were not unanimous (worth more samples)."""
    p_first = np.asarray(p_first, dtype=np.float64)
    return (p_first > 0.0) & (p_first < 1.0)
