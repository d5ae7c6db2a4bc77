"""The statistics every analysis and report shares, on `scipy.stats`.

One rule for undefined statistics: a correlation or cosine of fewer than 3 pairs, or of
a side with no spread, is NaN (`correlation`, `cosine`); the summaries that analyses
report (`correlation_test`, `mean_test`) raise `UndefinedStatistic` instead, since a
degenerate measurement is not a zero effect.

Intervals: `bootstrap_interval` runs `scipy.stats.bootstrap` with BCa and falls back to
the percentile interval of the same bootstrap draws where BCa cannot run (a draw or a
jackknife value is undefined, or the draws are all equal). Analyses that resample whole
units and refit a model per draw cannot use `scipy.stats.bootstrap`; they draw indices
with `resample_indices` and read `percentile_interval` of their refits. P-values of
"no association" come from `scipy.stats.permutation_test` (`permutation_pvalue`).

Seeds are the caller's: every function that draws takes `seed` (an int or a Generator).
Imports numpy, scipy and `valuescope.errors` only (layer 0).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import numpy as np
from scipy import stats as sps

from valuescope.errors import ValuescopeError

Method = Literal["pearson", "spearman"]
Seed = int | np.random.Generator
MIN_PAIRS = 3  # a correlation of 2 points is always +-1: no information


class UndefinedStatistic(ValuescopeError):
    """A statistic that the data cannot define (too few values, or no spread)."""


class Interval(NamedTuple):
    """A confidence interval; `method` is "BCa", "percentile", "basic" or "none"."""

    low: float | None
    high: float | None
    method: str


def _rng(seed: Seed) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise UndefinedStatistic(f"interval level {level} must lie strictly between 0 and 1")


# ---------------------------------------------------------------- point statistics


def _cosine_along(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Cosine of the mean-centred vectors along `axis`; NaN where a side is constant."""
    x, y = np.broadcast_arrays(np.asarray(x, float), np.asarray(y, float))
    xc = x - x.mean(axis=axis, keepdims=True)
    yc = y - y.mean(axis=axis, keepdims=True)
    den = np.sqrt((xc * xc).sum(axis=axis) * (yc * yc).sum(axis=axis))
    flat = (np.ptp(x, axis=axis) == 0) | (np.ptp(y, axis=axis) == 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (xc * yc).sum(axis=axis) / den
    return np.where(flat, np.nan, np.clip(r, -1.0, 1.0))


def _pearson_along(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Pearson r along `axis`: the centred cosine, NaN below 3 pairs."""
    r = _cosine_along(x, y, axis=axis)
    return np.full_like(r, np.nan) if np.shape(x)[axis] < MIN_PAIRS else r


def _spearman_along(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Spearman rho along `axis` (average ranks: tied values share their rank)."""
    return _pearson_along(sps.rankdata(x, axis=axis), sps.rankdata(y, axis=axis), axis=axis)


# paired statistics by name, vectorized along `axis` (as scipy.stats.bootstrap wants them)
PAIRED: dict[str, Callable[..., np.ndarray]] = {
    "pearson": _pearson_along,
    "spearman": _spearman_along,
    "cosine": _cosine_along,
}


def _check_method(method: str) -> None:
    if method not in ("pearson", "spearman"):
        raise UndefinedStatistic(f"correlation method {method!r}: expected pearson or spearman")


def correlation(x: Any, y: Any, method: Method = "pearson") -> float:
    """Pearson or Spearman (average ranks) correlation; NaN below 3 pairs or for a
    constant side. Use it where an undefined value may stand in a table."""
    _check_method(method)
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise UndefinedStatistic(
            f"correlation needs two equal-length lists, got {x.shape}, {y.shape}"
        )
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        return float("nan")
    return float(PAIRED[method](x, y))


def cosine(x: Any, y: Any) -> float:
    """Cosine similarity of the mean-centred vectors (the Pearson correlation, defined
    here from 2 points on); NaN when either is constant."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise UndefinedStatistic(f"cosine needs two equal-length lists, got {x.shape}, {y.shape}")
    if x.size < 2:  # one point has no direction once centred
        return float("nan")
    return float(_cosine_along(x, y))


def cosine_matrix(rows: Any) -> np.ndarray:
    """Cosine similarity between the rows of a matrix, each mean-centred first; a row with
    no spread gives NaN in its row and column (its diagonal too)."""
    rows = np.asarray(rows, dtype=float)
    centred = rows - rows.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(centred, axis=1)
    flat = np.ptp(rows, axis=1) == 0
    with np.errstate(invalid="ignore", divide="ignore"):
        unit = centred / norms[:, None]
    unit[flat] = np.nan
    return np.clip(unit @ unit.T, -1.0, 1.0)


def slope(x: Any, y: Any, axis: int = -1) -> np.ndarray:
    """Least-squares slope of y on x along `axis`; NaN where x is constant."""
    x, y = np.broadcast_arrays(np.asarray(x, float), np.asarray(y, float))
    xc = x - x.mean(axis=axis, keepdims=True)
    yc = y - y.mean(axis=axis, keepdims=True)
    sxx = (xc * xc).sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        b = (xc * yc).sum(axis=axis) / sxx
    return np.where(np.ptp(x, axis=axis) == 0, np.nan, b)


# ---------------------------------------------------------------- intervals


def percentile_interval(draws: Any, level: float) -> Interval:
    """Equal-tailed percentile interval of the finite `draws` (method "none" if none)."""
    _check_level(level)
    draws = np.asarray(draws, dtype=float)
    draws = draws[np.isfinite(draws)]
    if draws.size == 0:
        return Interval(None, None, "none")
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(draws, [tail, 100 - tail])
    return Interval(float(lo), float(hi), "percentile")


def basic_interval(draws: Any, estimate: float, level: float) -> Interval:
    """Basic (reflected) bootstrap interval [2 t - q_hi, 2 t - q_lo] around estimate t.

    It subtracts the bootstrap's own bias: when refits sit low of the estimate (a spread
    over few entities, say), the interval moves up by as much instead of being stretched.
    """
    q = percentile_interval(draws, level)
    if q.low is None or not np.isfinite(estimate):
        return Interval(None, None, "none")
    return Interval(float(2 * estimate - q.high), float(2 * estimate - q.low), "basic")


def bootstrap_interval(
    data: tuple[Any, ...],
    statistic: Callable[..., Any],
    seed: Seed,
    level: float = 0.9,
    n_resamples: int = 1000,
    paired: bool = True,
    vectorized: bool = True,
) -> Interval:
    """BCa bootstrap interval of `statistic(*data)` over the observations (resampled
    together when `paired`), via `scipy.stats.bootstrap`.

    A vectorized `statistic` takes `axis=-1`. Where BCa cannot run (an undefined draw
    or jackknife value, or all draws equal), the percentile interval of the same draws,
    the undefined ones left out; no interval when most draws are undefined.
    """
    _check_level(level)
    arrays = tuple(np.asarray(d, dtype=float) for d in data)
    if min(a.shape[-1] for a in arrays) < 2:
        return Interval(None, None, "none")
    with warnings.catch_warnings():
        # undefined draws and equal draws warn; both are handled below
        warnings.simplefilter("ignore", sps.DegenerateDataWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        res = sps.bootstrap(
            arrays,
            statistic,
            n_resamples=n_resamples,
            confidence_level=level,
            method="BCa",
            paired=paired,
            vectorized=vectorized,
            axis=-1,
            rng=_rng(seed),
        )
    lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if np.isfinite(lo) and np.isfinite(hi):
        return Interval(lo, hi, "BCa")
    draws = np.asarray(res.bootstrap_distribution, dtype=float)
    if np.isfinite(draws).sum() < draws.size / 2:
        # mostly undefined draws: an interval of the rest would describe other data
        return Interval(None, None, "none")
    return percentile_interval(draws, level)


def paired_interval(
    x: Any, y: Any, statistic: str, seed: Seed, level: float = 0.9, n_resamples: int = 1000
) -> Interval:
    """Bootstrap interval (over pairs) of a `PAIRED` statistic: pearson, spearman, cosine."""
    return bootstrap_interval((x, y), PAIRED[statistic], seed, level=level, n_resamples=n_resamples)


def resample_indices(n: int, n_resamples: int, seed: Seed) -> np.ndarray:
    """(n_resamples, n) indices drawn with replacement: the draws of a bootstrap that
    resamples whole units and refits per draw (where `scipy.stats.bootstrap` does not
    apply); read the refits with `percentile_interval`."""
    return _rng(seed).integers(0, n, size=(n_resamples, n))


# ---------------------------------------------------------------- tests


def permutation_pvalue(
    x: Any,
    y: Any,
    statistic: Callable[[np.ndarray, np.ndarray], np.ndarray],
    seed: Seed,
    n_resamples: int = 1000,
) -> float:
    """Two-sided p-value of "x and y are unrelated": how often re-pairing them at random
    gives |statistic| at least the observed one (`scipy.stats.permutation_test`,
    exact when n! <= n_resamples). `statistic(x, y, axis)` is vectorized."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)

    def size(xs: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.abs(statistic(xs, y, axis=axis))

    res = sps.permutation_test(
        (x,),
        size,
        permutation_type="pairings",
        vectorized=True,
        n_resamples=n_resamples,
        alternative="greater",
        axis=-1,
        rng=_rng(seed),
    )
    return float(res.pvalue)


def _finite_pairs(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise UndefinedStatistic(
            f"correlation needs two equal-length lists, got {x.shape}, {y.shape}"
        )
    ok = np.isfinite(x) & np.isfinite(y)
    return x[ok], y[ok]


def correlation_test(
    x: Any,
    y: Any,
    seed: Seed,
    method: Method = "pearson",
    level: float = 0.9,
    n_resamples: int = 1000,
) -> dict[str, Any]:
    """Correlation of the finite pairs with a bootstrap interval over pairs and a
    permutation p-value: {"value", "ci_low", "ci_high", "n", "p_value", "interval"}.

    Raises UndefinedStatistic below 3 finite pairs or when a side is constant.
    """
    _check_method(method)
    x, y = _finite_pairs(x, y)
    if x.size < MIN_PAIRS:
        raise UndefinedStatistic(f"correlation needs at least 3 finite pairs, got {x.size}")
    value = float(PAIRED[method](x, y))
    if not np.isfinite(value):
        raise UndefinedStatistic(
            "correlation undefined: one side is constant (the model gave every item the "
            "same utility or score)"
        )
    rng = _rng(seed)
    corr = PAIRED[method]
    ci = bootstrap_interval((x, y), corr, rng, level=level, n_resamples=n_resamples)
    return {
        "value": value,
        "ci_low": ci.low,
        "ci_high": ci.high,
        "n": int(x.size),
        "p_value": permutation_pvalue(x, y, corr, rng, n_resamples=n_resamples),
        "interval": ci.method,
    }


def _mean_along(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x, axis=axis)


def mean_test(x: Any, seed: Seed, level: float = 0.9, n_resamples: int = 1000) -> dict[str, Any]:
    """Mean of the finite values with a bootstrap interval:
    {"value", "ci_low", "ci_high", "n", "interval"}. Raises UndefinedStatistic if empty."""
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        raise UndefinedStatistic("mean of an empty list")
    ci = bootstrap_interval((x,), _mean_along, seed, level=level, n_resamples=n_resamples)
    if x.size == 1:
        ci = Interval(float(x[0]), float(x[0]), "percentile")  # every draw is that value
    return {
        "value": float(x.mean()),
        "ci_low": ci.low,
        "ci_high": ci.high,
        "n": int(x.size),
        "interval": ci.method,
    }


def mean_interval(
    x: Any, seed: Seed, level: float = 0.9, n_resamples: int = 1000
) -> dict[str, float | None]:
    """`mean_test` for table cells that may be empty: {"value", "ci_low", "ci_high"}, all
    None when no value is finite, the interval None when `n_resamples` is 0."""
    x = np.asarray(x, dtype=float)
    if not np.isfinite(x).any():
        return {"value": None, "ci_low": None, "ci_high": None}
    if n_resamples == 0:
        return {"value": float(x[np.isfinite(x)].mean()), "ci_low": None, "ci_high": None}
    out = mean_test(x, seed, level=level, n_resamples=n_resamples)
    return {key: out[key] for key in ("value", "ci_low", "ci_high")}
