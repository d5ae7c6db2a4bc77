"""Active design: add pairs whose utilities look close and whose outcomes are little asked."""

from __future__ import annotations

import numpy as np

from valuescope.design.pairs import (
    ENUMERATE_LIMIT,
    all_pair_codes,
    decode,
    sample_new_codes,
)

# Candidate pairs scored per round when outcomes are too many to enumerate every pair.
CANDIDATES = 200_000


def batch_size(n: int, budget: int) -> int:
    """Pairs added per round: about a tenth of the budget, between n/2 and 500."""
    return int(np.clip(round(0.1 * budget), max(n // 2, 1), 500))


def select_batch(
    mean: np.ndarray,
    asked: np.ndarray,
    excluded: np.ndarray,
    k: int,
    rng: np.random.Generator,
    *,
    gap_quantile: float = 0.10,
    degree_quantile: float = 0.20,
    uniform_share: float = 0.0,
) -> np.ndarray:
    """Choose k new pairs among those not asked and not held out.

    A share `uniform_share` of the k pairs is drawn uniformly from the candidates (pairs
    far apart in utility are what pin down the sigmas, and near-ties alone leave them
    poorly identified; docs/benchmarks.md). The others are chosen actively: pairs in the
    lowest `gap_quantile` of utility gap |mu_a - mu_b| and the lowest `degree_quantile`
    of degree sum; when that set is smaller than needed, the rest comes from the best
    combined rank of the two scores. Rows come back sorted.
    """
    n = len(mean)
    asked = np.asarray(asked, dtype=np.int64).reshape(-1, 2)
    used = np.concatenate([_codes(asked, n), np.asarray(excluded, dtype=np.int64)])
    if n <= ENUMERATE_LIMIT:
        cand = np.setdiff1d(all_pair_codes(n), used)
    else:
        cand = sample_new_codes(n, CANDIDATES, used, rng)
    if len(cand) <= k:
        return decode(cand, n)
    n_uniform = int(round(np.clip(uniform_share, 0.0, 1.0) * k))
    if n_uniform == 0:
        return _active(mean, asked, decode(cand, n), k, rng, gap_quantile, degree_quantile)
    uniform = rng.choice(len(cand), size=n_uniform, replace=False)
    rest = decode(np.delete(cand, uniform), n)
    chosen = _active(mean, asked, rest, k - n_uniform, rng, gap_quantile, degree_quantile)
    return decode(np.sort(np.concatenate([cand[uniform], _codes(chosen, n)])), n)


def _active(
    mean: np.ndarray,
    asked: np.ndarray,
    pairs: np.ndarray,
    k: int,
    rng: np.random.Generator,
    gap_quantile: float,
    degree_quantile: float,
) -> np.ndarray:
    """The reference rule: k of `pairs` with small utility gaps and few comparisons."""
    n = len(mean)
    if k <= 0:
        return pairs[:0]
    degree = np.bincount(asked.ravel(), minlength=n)
    gap = np.abs(mean[pairs[:, 0]] - mean[pairs[:, 1]])
    deg = degree[pairs[:, 0]] + degree[pairs[:, 1]]
    good = (gap <= np.quantile(gap, gap_quantile)) & (deg <= np.quantile(deg, degree_quantile))
    idx = np.flatnonzero(good)
    if len(idx) >= k:
        return pairs[np.sort(rng.choice(idx, size=k, replace=False))]
    rank = np.argsort(np.argsort(gap)) + np.argsort(np.argsort(deg))
    rank = rank + rng.random(len(rank))  # random tie-break
    rank[idx] = -1.0
    return pairs[np.sort(np.argsort(rank)[:k])]


def _codes(pairs: np.ndarray, n: int) -> np.ndarray:
    lo, hi = np.minimum(pairs[:, 0], pairs[:, 1]), np.maximum(pairs[:, 0], pairs[:, 1])
    return lo * n + hi
