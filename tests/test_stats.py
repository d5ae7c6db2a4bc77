"""valuescope.stats: correlations, cosines, bootstrap intervals and permutation p-values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from valuescope import stats
from valuescope.stats import UndefinedStatistic


def _planted_pairs(seed: int, n: int, rho: float) -> tuple[np.ndarray, np.ndarray]:
    z = np.random.default_rng(seed).multivariate_normal([0, 0], [[1, rho], [rho, 1]], size=n)
    return z[:, 0], z[:, 1]


# ---------------------------------------------------------------- point statistics


def test_correlation_matches_scipy_with_ties():
    x, y = _planted_pairs(3, 25, 0.4)
    y = np.round(y, 1)  # ties on one side: average ranks
    assert stats.correlation(x, y) == pytest.approx(sps.pearsonr(x, y).statistic, abs=1e-12)
    assert stats.correlation(x, y, "spearman") == pytest.approx(
        sps.spearmanr(x, y).statistic, abs=1e-12
    )


@pytest.mark.parametrize(
    ("x", "y"),
    [
        ([1, 2], [2, 1]),
        ([1, 2, 3], [5, 5, 5]),
        ([4, 4, 4, 4], [1, 2, 3, 4]),
        ([1, 2, np.nan], [1, 2, 3]),
    ],
)
def test_correlation_is_nan_when_undefined(x, y):
    for method in ("pearson", "spearman"):
        assert math.isnan(stats.correlation(x, y, method))


def test_correlation_rejects_bad_input():
    with pytest.raises(UndefinedStatistic, match="equal-length"):
        stats.correlation([1, 2, 3], [1, 2])
    with pytest.raises(UndefinedStatistic, match="expected pearson or spearman"):
        stats.correlation([1, 2, 3], [1, 2, 3], "kendall")


def test_cosine_is_the_pearson_correlation_and_nan_for_a_flat_vector():
    x, y = _planted_pairs(4, 12, -0.3)
    assert stats.cosine(x, y) == pytest.approx(np.corrcoef(x, y)[0, 1], abs=1e-12)
    assert stats.cosine([1.0, 2.0], [5.0, 3.0]) == pytest.approx(-1.0)  # defined from 2 points
    assert math.isnan(stats.cosine([1, 2, 3], [2, 2, 2]))
    assert math.isnan(stats.cosine([], [])) and math.isnan(stats.cosine([1.0], [2.0]))
    m = stats.cosine_matrix([[1, 2, 3], [7, 7, 7], [3, 2.5, 1]])
    assert m[0, 0] == pytest.approx(1.0) and m[0, 2] == pytest.approx(m[2, 0])
    assert np.isnan(m[1]).all() and np.isnan(m[:, 1]).all()


def test_slope_is_least_squares_and_nan_for_constant_x():
    x, y = _planted_pairs(5, 20, 0.6)
    assert float(stats.slope(x, y)) == pytest.approx(sps.linregress(x, y).slope, abs=1e-12)
    assert math.isnan(float(stats.slope([2, 2, 2], [1, 2, 3])))


# ---------------------------------------------------------------- intervals


def test_bootstrap_interval_is_scipys_bca():
    x = np.random.default_rng(6).exponential(size=40)  # skewed: BCa and percentile differ
    got = stats.bootstrap_interval((x,), np.mean, seed=11, level=0.9)
    ref = sps.bootstrap(
        (x,), np.mean, n_resamples=1000, confidence_level=0.9, method="BCa",
        rng=np.random.default_rng(11),
    )  # fmt: skip
    assert got.method == "BCa"
    assert (got.low, got.high) == pytest.approx(
        (ref.confidence_interval.low, ref.confidence_interval.high)
    )
    pct = stats.percentile_interval(ref.bootstrap_distribution, 0.9)
    assert abs(got.low - pct.low) > 1e-3  # the bias correction did something


def test_bootstrap_falls_back_to_percentile_when_the_jackknife_is_degenerate():
    # 3 pairs: every jackknife sample has 2 pairs, whose correlation is undefined
    got = stats.paired_interval([1.0, 2.0, 3.0], [1.0, 3.0, 2.0], "spearman", seed=0)
    assert got.method == "percentile" and -1 <= got.low <= got.high <= 1
    flat = stats.bootstrap_interval(([1.0, 1.0, 1.0, 1.0],), np.mean, seed=0)
    assert (flat.low, flat.high, flat.method) == (1.0, 1.0, "percentile")


def test_percentile_interval_and_resample_indices():
    assert stats.percentile_interval([np.nan, np.inf], 0.9) == (None, None, "none")
    lo, hi, _ = stats.percentile_interval(np.arange(101.0), 0.9)
    assert (lo, hi) == pytest.approx((5.0, 95.0))
    idx = stats.resample_indices(7, 50, seed=2)
    assert idx.shape == (50, 7) and idx.min() >= 0 and idx.max() <= 6
    assert np.array_equal(idx, stats.resample_indices(7, 50, seed=2))
    with pytest.raises(UndefinedStatistic, match="strictly between 0 and 1"):
        stats.percentile_interval([1.0], 1.0)


def test_bca_mean_interval_covers_a_normal_mean_near_95_percent():
    """200 samples of 30 from N(2, 1): the 95% interval holds 2 in 0.90-0.99 of them
    (binomial s.d. at 0.95 is 0.015; measured 0.94)."""
    hits = 0
    for r in range(200):
        x = np.random.default_rng(1000 + r).normal(2.0, 1.0, size=30)
        m = stats.mean_test(x, seed=r, level=0.95)
        assert m["interval"] == "BCa"
        hits += m["ci_low"] <= 2.0 <= m["ci_high"]
    assert 0.90 <= hits / 200 <= 0.99


def test_bca_spearman_interval_covers_a_planted_bivariate_normal_near_95_percent():
    """200 samples of 50 pairs with Pearson rho 0.5, whose Spearman is 6/pi asin(1/4):
    the 95% interval holds it in 0.90-0.99 of them (measured 0.955)."""
    truth = 6 / np.pi * np.arcsin(0.25)

    corr = stats.PAIRED["spearman"]
    hits = 0
    for r in range(200):
        x, y = _planted_pairs(5000 + r, 50, 0.5)
        ci = stats.bootstrap_interval((x, y), corr, seed=r, level=0.95)
        hits += ci.low <= truth <= ci.high
    assert 0.90 <= hits / 200 <= 0.99


# ---------------------------------------------------------------- tests and summaries


def test_permutation_pvalue_is_exact_for_small_n():
    # 5! = 120 pairings; |r| = 1 only for the order itself and its reverse
    corr = stats.PAIRED["pearson"]
    p = stats.permutation_pvalue([1, 2, 3, 4, 5], [2, 4, 6, 8, 10], corr, seed=0)
    assert p == pytest.approx(2 / 120)


def test_permutation_pvalue_is_uniform_ish_under_the_null_and_small_for_a_relation():
    corr = stats.PAIRED["pearson"]
    null = [stats.permutation_pvalue(*_planted_pairs(s, 30, 0.0), corr, seed=s) for s in range(60)]
    assert 0.02 <= np.mean(np.array(null) < 0.1) <= 0.25
    assert stats.permutation_pvalue(*_planted_pairs(1, 30, 0.8), corr, seed=1) < 0.01


def test_correlation_test_summary_and_errors():
    x, y = _planted_pairs(8, 40, 0.7)
    y[3] = np.nan  # dropped with its pair
    out = stats.correlation_test(x, y, seed=1, method="spearman")
    assert out["n"] == 39 and out["interval"] == "BCa"
    assert out["ci_low"] < out["value"] < out["ci_high"] and out["p_value"] < 0.01
    assert out == stats.correlation_test(x, y, seed=1, method="spearman")  # seeded
    with pytest.raises(UndefinedStatistic, match="at least 3 finite pairs"):
        stats.correlation_test([1, 2], [1, 2], seed=0)
    with pytest.raises(UndefinedStatistic, match="one side is constant"):
        stats.correlation_test([1, 2, 3, 4], [2, 2, 2, 2], seed=0)


def test_mean_test_summary_and_errors():
    out = stats.mean_test([0, 1, 1, 0, 1, np.nan], seed=3)
    assert out["value"] == pytest.approx(0.6) and out["n"] == 5
    assert 0 <= out["ci_low"] <= 0.6 <= out["ci_high"] <= 1
    assert stats.mean_test([4.0], seed=0)["ci_low"] == 4.0
    with pytest.raises(UndefinedStatistic, match="empty"):
        stats.mean_test([np.nan], seed=0)


def test_no_interval_when_most_draws_are_undefined():
    def defined_above_03(a, axis=-1):  # undefined for about 3 in 4 resamples of the data
        m = np.mean(a, axis=axis)
        return np.where(m > 0.3, m, np.nan)

    got = stats.bootstrap_interval(([0.0, 0.0, 0.0, 0.0, 1.0],), defined_above_03, seed=0)
    assert got == (None, None, "none")


def test_percentile_and_basic_intervals_golden():
    values = np.array([1.0, 2.0, 3.0, 4.0, 5.0, np.nan, np.inf])
    lo, hi = np.percentile([1, 2, 3, 4, 5], [10, 90])
    assert stats.percentile_interval(values, 0.8)[:2] == pytest.approx((lo, hi))
    # basic: reflected around the estimate, 2 t - q_hi .. 2 t - q_lo
    got = stats.basic_interval(values, 2.0, 0.8)
    assert got[:2] == pytest.approx((4.0 - hi, 4.0 - lo)) and got.method == "basic"
    assert stats.basic_interval(np.array([np.nan]), 1.0, 0.9) == (None, None, "none")
    assert stats.basic_interval(values, float("nan"), 0.8) == (None, None, "none")


def test_mean_interval_for_table_cells():
    assert stats.mean_interval([np.nan, np.nan], seed=0) == {
        "value": None, "ci_low": None, "ci_high": None,
    }  # fmt: skip
    assert stats.mean_interval([1.0, 3.0], seed=0, n_resamples=0) == {
        "value": 2.0, "ci_low": None, "ci_high": None,
    }  # fmt: skip
    got = stats.mean_interval([0.0, 1.0, np.nan, 1.0, 1.0, 0.0, 1.0], seed=0)
    assert got["value"] == pytest.approx(4 / 6) and got["ci_low"] < 4 / 6 < got["ci_high"]


def test_the_module_imports_only_numpy_scipy_and_errors():
    import ast
    from pathlib import Path

    tree = ast.parse(Path(stats.__file__).read_text(encoding="utf-8"))
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    ours = {n for n in names if n.split(".")[0] not in {"__future__", "warnings", "collections"}}
    ours -= {"typing"}
    assert ours == {"numpy", "scipy", "valuescope.errors"}
