"""Golden values for the metrics and the fitters' edges, written to kill mutants.

`scripts/mutation.sh` runs these with test_fit.py and test_metrics.py; every expected
number is worked out here by hand or with scipy, never with the function under test.
"""

from __future__ import annotations

import math
import warnings
from itertools import combinations
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import stats
from scipy.optimize import minimize
from scipy.special import expit, log_expit, log_ndtr, ndtr, ndtri

from valuescope.fit import ConvergenceWarning, metrics
from valuescope.fit._validation import check_pairs, count_components
from valuescope.fit.bootstrap import bootstrap_thurstonian
from valuescope.fit.bradley_terry import BradleyTerryResult, fit_bradley_terry
from valuescope.fit.metrics import (
    accuracy,
    coin_completeness,
    completeness,
    cycle_probability,
    entropy,
    kl_divergence,
    log_loss,
    pair_metrics,
    sample_triads,
    triad_cycle_values,
)
from valuescope.fit.thurstonian import (
    ThurstonianResult,
    _flat_enough,
    _log_cdf_pair,
    fit_thurstonian,
    probit_start,
)


def bernoulli_ce(p: float, q: float) -> float:
    return -(p * math.log(q) + (1 - p) * math.log(1 - q))


# ---- pair metrics -----------------------------------------------------------------------


def test_accuracy_golden():
    p = [0.9, 0.2, 0.5, 0.7, 0.6]
    q = [0.6, 0.4, 0.8, 0.3, 0.5]
    # agree, agree, tie (observed), disagree, tie (predicted)
    assert accuracy(p, q) == pytest.approx((1 + 1 + 0.5 + 0 + 0.5) / 5)
    assert accuracy([0.1], [0.2]) == 1.0
    assert accuracy([0.1], [0.9]) == 0.0


def test_log_loss_entropy_and_kl_golden():
    p, q = [1.0, 0.25, 0.6], [0.8, 0.5, 0.6]
    want = np.mean([bernoulli_ce(a, b) for a, b in zip(p, q)])
    assert log_loss(p, q) == pytest.approx(want)
    # entropy of the observations: 0 for p = 1, ln 2 at 1/2
    h = [0.0, stats.entropy([0.25, 0.75]), stats.entropy([0.6, 0.4])]
    assert entropy(p) == pytest.approx(np.mean(h), abs=1e-9)
    kl = np.mean([stats.entropy([a, 1 - a], [b, 1 - b]) for a, b in zip(p, q)])
    assert kl_divergence(p, q) == pytest.approx(kl, abs=1e-9)
    assert entropy([0.5]) == pytest.approx(math.log(2))


def test_predictions_of_zero_and_one_are_clipped_not_infinite():
    assert log_loss([0.0], [1.0]) == pytest.approx(-math.log(metrics._EPS), rel=1e-6)
    assert log_loss([1.0], [1.0]) == pytest.approx(0.0, abs=1e-9)
    assert log_loss([0.0], [0.0]) == pytest.approx(0.0, abs=1e-9)
    assert np.isfinite(log_loss([1.0, 0.0], [0.0, 1.0]))
    assert entropy([0.0, 1.0]) == pytest.approx(0.0, abs=1e-9)


def test_kl_is_zero_for_perfect_predictions_and_never_negative():
    p = [0.3, 0.8, 0.5]
    assert kl_divergence(p, p) == 0.0
    assert kl_divergence([0.5], [0.5]) == 0.0
    assert kl_divergence([1.0], [0.5]) == pytest.approx(math.log(2))


def test_completeness_golden():
    assert completeness([0.2, 0.5, 0.9]) == pytest.approx((0.8 + 0.5 + 0.9) / 3)
    assert completeness([0.0, 1.0]) == 1.0


@pytest.mark.parametrize("n", [1, 2, 3, 5, 10])
def test_coin_completeness_from_the_binomial(n):
    k = np.arange(n + 1)
    share = k / n
    want = float(np.sum(stats.binom.pmf(k, n, 0.5) * np.maximum(share, 1 - share)))
    assert coin_completeness(n) == pytest.approx(want)


def test_coin_completeness_small_cases_by_hand():
    assert coin_completeness(1) == 1.0
    assert coin_completeness(2) == pytest.approx(0.75)
    assert coin_completeness(0) == 0.5
    assert coin_completeness(-3) == 0.5


def test_pair_metrics_bundle_the_three():
    p, q = np.array([0.9, 0.3]), np.array([0.7, 0.4])
    got = pair_metrics(p, q)
    assert got == {"accuracy": 1.0, "log_loss": log_loss(p, q), "kl": kl_divergence(p, q)}


# ---- triads and cycles ------------------------------------------------------------------


def test_sample_triads_finds_exactly_the_triangles():
    # a triangle 0-1-2, a pendant edge 2-3, and a separate path 4-5-6 (no triangle)
    pairs = np.array([[0, 1], [2, 1], [0, 2], [3, 2], [4, 5], [5, 6]])
    got = sample_triads(pairs, 7)
    np.testing.assert_array_equal(got, [[0, 1, 2]])
    assert got.dtype == np.int64
    k4 = np.array(list(combinations(range(4), 2)))
    np.testing.assert_array_equal(sample_triads(k4, 4), list(combinations(range(4), 3)))
    assert len(sample_triads(k4, 4, max_triads=2)) == 2
    np.testing.assert_array_equal(sample_triads(k4, 4, max_triads=4), sample_triads(k4, 4))
    # at most max_triads triangles: every one (a random search of 4 * 5000 tries missed 21)
    k30 = np.array(list(combinations(range(30), 2)))
    got30 = sample_triads(k30, 30)
    assert len(got30) == math.comb(30, 3) == 4060
    np.testing.assert_array_equal(got30, list(combinations(range(30), 3)))
    assert len(sample_triads(k30, 30, max_triads=4060)) == 4060  # exactly the limit: all
    none = sample_triads(np.array([[0, 1], [1, 2]]), 3)
    assert none.shape == (0, 3) and none.dtype == np.int64
    zero = sample_triads(k4, 4, max_triads=0)  # more triangles than asked: none drawn
    assert zero.shape == (0, 3) and zero.dtype == np.int64
    # integer-valued pairs of another dtype are read as indices
    np.testing.assert_array_equal(sample_triads(k4.astype(float), 4), sample_triads(k4, 4))


def test_sample_triads_draws_past_edges_without_triangles():
    # K6 (20 triangles) and 9 pendant edges that close none: a draw that lands on a
    # pendant edge tries again, so max_triads distinct triangles are still found (a search
    # that stopped at the first pendant edge found fewer for each of these seeds)
    k6 = list(combinations(range(6), 2))
    pendant = [(i % 6, 6 + i) for i in range(9)]
    pairs = np.array(k6 + pendant)
    for seed in range(5):
        got = sample_triads(pairs, 15, max_triads=4, seed=seed)
        assert len(got) == len({tuple(t) for t in got.tolist()}) == 4
        assert all(c < 6 for _, _, c in got.tolist())


def test_sample_triads_is_seeded():
    k6 = np.array(list(combinations(range(6), 2)))
    a = sample_triads(k6, 6, max_triads=3, seed=4)
    np.testing.assert_array_equal(a, sample_triads(k6, 6, max_triads=3, seed=4))
    draws = {tuple(map(tuple, sample_triads(k6, 6, max_triads=3, seed=s))) for s in range(8)}
    assert len(draws) > 1


def hand_cycle(x: float, y: float, z: float) -> float:
    return x * y * z + (1 - x) * (1 - y) * (1 - z)


def test_cycle_probability_of_one_triad_with_mixed_orientations():
    # P(0>1) = 0.9, P(1>2) = 0.8 (asked as (2, 1) with 0.2), P(2>0) = 0.7 (asked as (0, 2))
    pairs = np.array([[0, 1], [2, 1], [0, 2]])
    value, n = cycle_probability(pairs, np.array([0.9, 0.2, 0.3]), 3)
    assert n == 1
    assert value == pytest.approx(hand_cycle(0.9, 0.8, 0.7))
    vals = triad_cycle_values(pairs, np.array([0.9, 0.2, 0.3]), 3)
    np.testing.assert_allclose(vals, [0.9 * 0.8 * 0.7 + 0.1 * 0.2 * 0.3])


def test_cycle_probability_over_every_triad_of_k4():
    rng = np.random.default_rng(3)
    pairs = np.array(list(combinations(range(4), 2)))
    p = rng.uniform(0.05, 0.95, len(pairs))
    pref = {}
    for (a, b), v in zip(pairs.tolist(), p):
        pref[(a, b)], pref[(b, a)] = v, 1 - v
    want = [
        hand_cycle(pref[(a, b)], pref[(b, c)], pref[(c, a)])
        for a, b, c in combinations(range(4), 3)
    ]
    np.testing.assert_allclose(triad_cycle_values(pairs, p, 4), want)
    value, n = cycle_probability(pairs, p, 4)
    assert n == 4 and value == pytest.approx(np.mean(want))


def test_cycle_probability_without_triads_is_nan():
    value, n = cycle_probability(np.array([[0, 1], [1, 2]]), np.array([0.6, 0.7]), 3)
    assert n == 0 and math.isnan(value)
    assert triad_cycle_values(np.array([[0, 1]]), np.array([0.6]), 2).shape == (0,)


def test_sample_triads_stops_at_max_triads_by_default():
    # K33 has 5456 triangles: the default cap of 5000 is reached within its attempts
    k33 = np.array(list(combinations(range(33), 2)))
    assert len(sample_triads(k33, 33)) == 5000
    p = np.full(len(k33), 0.7)
    value, n = cycle_probability(k33, p, 33)
    assert n == 5000
    assert len(triad_cycle_values(k33, p, 33)) == 5000


def test_the_seed_reaches_the_triad_sampler():
    rng = np.random.default_rng(0)
    k6 = np.array(list(combinations(range(6), 2)))
    p = rng.uniform(0.05, 0.95, len(k6))
    by_seed = {s: triad_cycle_values(k6, p, 6, max_triads=3, seed=s) for s in range(6)}
    assert len({tuple(np.round(v, 12)) for v in by_seed.values()}) > 1
    for s, values in by_seed.items():
        triads = sample_triads(k6, 6, max_triads=3, seed=s)
        assert len(values) == len(triads) == 3
        value, n = cycle_probability(k6, p, 6, max_triads=3, seed=s)
        assert value == pytest.approx(values.mean()) and n == 3


# ---- input checks: every message, every boundary ----------------------------------------


@pytest.mark.parametrize(
    ("pairs", "p", "n", "message"),
    [
        ([[0, 1]], [0.5], 1, "n_outcomes must be an integer >= 2, got 1"),
        ([[0, 1, 2]], [0.5], 3, r"pairs must have shape \(E, 2\), got \(1, 3\)"),
        (np.zeros((0, 2), int), [], 2, "^pairs is empty: at least one comparison is needed$"),
        ([[0.0, 1.5]], [0.5], 2, "^pairs must hold integer outcome ids$"),
        ([[0.0, np.nan]], [0.5], 2, "^pairs must hold integer outcome ids$"),
        ([[0, 3]], [0.5], 3, r"^pairs hold ids outside 0\.\.2 \(min 0, max 3\)$"),
        ([[-1, 1]], [0.5], 3, r"^pairs hold ids outside 0\.\.2 \(min -1, max 1\)$"),
        ([[0, 1], [2, 2]], [0.5, 0.5], 3, "^pair 1 compares outcome 2 with itself$"),
        ([[0, 1]], [0.5, 0.5], 2, r"^p must have shape \(1,\) to match pairs, got \(2,\)$"),
        ([[0, 1]], [np.inf], 2, "^p holds NaN or infinite values$"),
        ([[0, 1]], [-0.1], 2, r"^p must lie in \[0, 1\], got range \[-0\.1, -0\.1\]$"),
    ],
)
def test_check_pairs_names_each_problem(pairs, p, n, message):
    with pytest.raises(ValueError, match=message):
        check_pairs(np.asarray(pairs), np.asarray(p), n)


def test_check_pairs_accepts_integral_floats_and_the_largest_id():
    pairs, p = check_pairs(np.array([[0.0, 2.0], [1.0, 2.0]]), [1, 0], 3)
    assert pairs.dtype == np.int64 and p.dtype == np.float64
    np.testing.assert_array_equal(pairs, [[0, 2], [1, 2]])
    # disconnected graphs pass unless asked for, and one component passes when asked
    check_pairs(np.array([[0, 1], [2, 3]]), np.array([0.5, 0.5]), 4)
    check_pairs(np.array([[1, 0], [2, 1]]), np.array([0.5, 0.5]), 3, require_connected=True)


def test_components_are_counted_undirected():
    # 0 -> 1 and 2 -> 1: one component undirected, not strongly connected
    assert count_components(np.array([[0, 1], [2, 1]]), 3) == 1
    assert count_components(np.array([[0, 1], [2, 3]]), 5) == 3
    msg = "^the comparison graph splits into 2 disconnected parts: utilities of different"
    with pytest.raises(ValueError, match=msg):
        check_pairs(np.array([[0, 1], [2, 3]]), np.array([0.5, 0.5]), 4, require_connected=True)


# ---- the fitters' outputs, against computations made here -------------------------------


def test_thurstonian_predict_golden():
    res = ThurstonianResult(
        mean=np.array([1.0, -0.5, 0.0]), sigma=np.array([0.5, 2.0, 1.0]),
        converged=True, n_iter=1, loss=0.0, raw_params=np.zeros(6),
    )  # fmt: skip
    got = res.predict(np.array([[0.0, 1.0], [2.0, 0.0]]))  # float ids are cast
    want = [ndtr(1.5 / math.hypot(0.5, 2.0)), ndtr(-1.0 / math.hypot(1.0, 0.5))]
    np.testing.assert_allclose(got, want)


def test_bradley_terry_predict_golden():
    res = BradleyTerryResult(
        mean=np.zeros(3), sigma=np.zeros(3), scores=np.array([1.0, -0.5, 0.25]),
        converged=True, n_iter=1, loss=0.0,
    )  # fmt: skip
    np.testing.assert_allclose(
        res.predict(np.array([[0.0, 1.0], [2.0, 1.0]])), [expit(1.5), expit(0.75)]
    )


def test_log_cdf_pair_against_scipy_in_the_tails():
    z = np.array([-40.0, -9.0, -8.5, -3.0, 0.0, 2.0, 8.5, 40.0])
    log_q, log_1mq = _log_cdf_pair(z)
    np.testing.assert_allclose(log_q, log_ndtr(z), rtol=1e-10)
    np.testing.assert_allclose(log_1mq, log_ndtr(-z), rtol=1e-10)


def test_probit_start_solves_the_regularised_laplacian_system():
    a = np.array([0, 1, 2, 0, 3])
    b = np.array([1, 2, 3, 2, 4])  # outcome 4 is only ever second, 0 only first
    p = np.array([0.9, 0.3, 0.6, 0.99, 0.2])
    w = np.array([1.0, 2.0, 0.5, 1.5, 3.0])
    n, alpha = 5, 0.1
    y = math.sqrt(2) * ndtri(np.clip(p, 0.02, 0.98))
    lap = np.zeros((n, n))
    rhs = np.zeros(n)
    for i, j, wi, yi in zip(a, b, w, y):
        lap[i, i] += wi
        lap[j, j] += wi
        lap[i, j] -= wi
        lap[j, i] -= wi
        rhs[i] += wi * yi
        rhs[j] -= wi * yi
    want = np.linalg.solve(lap + alpha * np.eye(n), rhs)
    np.testing.assert_allclose(probit_start(a, b, p, w, n, alpha), want, atol=1e-4)


def neg_log_lik(theta, pairs, p, w, n, alpha, model):
    """The penalised objective, written out here for both models."""
    a, b = pairs[:, 0], pairs[:, 1]
    if model == "bt":
        d = theta[a] - theta[b]
        ll = p * log_expit(d) + (1 - p) * log_expit(-d)
        return -np.sum(w * ll) + 0.5 * alpha * theta @ theta
    mu, ls = theta[:n], theta[n:]
    z = (mu[a] - mu[b]) / np.sqrt(np.exp(2 * ls[a]) + np.exp(2 * ls[b]))
    ll = p * log_ndtr(z) + (1 - p) * log_ndtr(-z)
    return -np.sum(w * ll) + 0.5 * alpha * (mu @ mu + ls @ ls)


PAIRS = np.array([[0, 1], [1, 2], [2, 3], [0, 2], [1, 3], [3, 0], [1, 0]])
P = np.array([0.8, 0.7, 0.55, 0.9, 0.6, 0.3, 0.35])


def test_bradley_terry_is_the_penalised_maximum_likelihood_fit():
    w = np.array([1.0, 2.0, 1.0, 0.5, 1.0, 1.0, 3.0])
    for alpha in (0.1, 1.0):
        kw = {} if alpha == 0.1 else {"alpha": alpha}  # 0.1 is the default
        fit = fit_bradley_terry(PAIRS, P, 4, weights=w, **kw)
        ref = minimize(neg_log_lik, np.zeros(4), args=(PAIRS, P, w, 4, alpha, "bt"))
        scores = ref.x - ref.x.mean()
        np.testing.assert_allclose(fit.scores, scores, atol=1e-4)
        np.testing.assert_allclose(fit.mean, scores / scores.std(), atol=1e-4)
        assert fit.loss == pytest.approx(ref.fun / w.sum(), rel=1e-5)
        assert fit.converged is True and fit.n_iter > 0
        np.testing.assert_array_equal(fit.sigma, np.zeros(4))
    with pytest.raises(ValueError, match="outside"):
        fit_bradley_terry(np.array([[0, 9]]), np.array([0.5]), 3)


def test_thurstonian_is_the_penalised_maximum_likelihood_fit():
    w = np.array([1.0, 2.0, 1.0, 0.5, 1.0, 1.0, 3.0])
    fit = fit_thurstonian(PAIRS, P, 4, weights=w, alpha=0.5)
    ref = minimize(neg_log_lik, np.zeros(8), args=(PAIRS, P, w, 4, 0.5, "th"))
    assert fit.loss == pytest.approx(ref.fun / w.sum(), rel=1e-4)
    assert isinstance(fit.n_iter, int) and fit.n_iter > 0
    np.testing.assert_allclose(fit.raw_params, fit.raw_params.copy())
    assert fit.raw_params.shape == (8,)
    # the fitted predictions are the reference fit's predictions
    ref_fit = ThurstonianResult(
        mean=ref.x[:4], sigma=np.exp(ref.x[4:]), converged=True, n_iter=0, loss=0.0,
        raw_params=ref.x,
    )  # fmt: skip
    np.testing.assert_allclose(fit.predict(PAIRS), ref_fit.predict(PAIRS), atol=1e-3)


def test_a_single_pair_loss_is_per_weight():
    # one pair of weight 1: loss is the objective itself (not halved)
    fit = fit_thurstonian(np.array([[0, 1]]), np.array([0.7]), 2, alpha=0.1)
    ref = minimize(neg_log_lik, np.zeros(4), args=(np.array([[0, 1]]), np.array([0.7]),
                   np.ones(1), 2, 0.1, "th"))  # fmt: skip
    assert fit.loss == pytest.approx(ref.fun, rel=1e-4)
    bt = fit_bradley_terry(np.array([[0, 1]]), np.array([0.7]), 2)
    ref = minimize(neg_log_lik, np.zeros(2), args=(np.array([[0, 1]]), np.array([0.7]),
                   np.ones(1), 2, 0.1, "bt"))  # fmt: skip
    assert bt.loss == pytest.approx(ref.fun, rel=1e-5)


def test_fixed_sigma_fits_means_only():
    fit = fit_thurstonian(PAIRS, P, 4, learn_sigma=False)
    assert fit.raw_params.shape == (4,)
    np.testing.assert_array_equal(fit.sigma, np.full(4, fit.sigma[0]))
    assert fit.sigma[0] > 0
    probit = np.sqrt(2) * fit.mean  # sigma 1 on the raw scale: check the predictions
    assert np.all(np.isfinite(probit))


def test_a_warm_start_gives_the_same_fit():
    cold = fit_thurstonian(PAIRS, P, 4)
    warm = fit_thurstonian(PAIRS, P, 4, init=list(cold.raw_params))
    np.testing.assert_allclose(warm.mean, cold.mean, atol=1e-4)
    means_only = fit_thurstonian(PAIRS, P, 4, learn_sigma=False, init=cold.raw_params)
    assert means_only.raw_params.shape == (4,)


def test_weights_count_like_repeated_pairs():
    w = np.array([3.0, 1, 1, 1, 1, 1, 1])
    weighted = fit_thurstonian(PAIRS, P, 4, weights=w)
    repeated = fit_thurstonian(np.vstack([PAIRS, PAIRS[:1], PAIRS[:1]]), np.r_[P, P[0], P[0]], 4)
    np.testing.assert_allclose(weighted.mean, repeated.mean, atol=1e-4)
    bt_w = fit_bradley_terry(PAIRS, P, 4, weights=w)
    bt_r = fit_bradley_terry(np.vstack([PAIRS, PAIRS[:1], PAIRS[:1]]), np.r_[P, P[0], P[0]], 4)
    np.testing.assert_allclose(bt_w.scores, bt_r.scores, atol=1e-4)


def test_fits_raise_no_warnings_on_good_data():
    # a misspelt solver option would raise scipy's OptimizeWarning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit_thurstonian(PAIRS, P, 4)
        fit_bradley_terry(PAIRS, P, 4)


def test_convergence_warnings_name_the_knob_and_point_at_the_caller(synthetic):
    pairs, p, _, _ = synthetic(n=20, n_pairs=150, seed=2, samples=5)
    for fit, text in (
        (fit_thurstonian, "raise max_iter or check the data"),
        (fit_bradley_terry, "raise max_iter"),
    ):
        with pytest.warns(ConvergenceWarning, match=text) as record:
            result = fit(pairs, p, 20, max_iter=1)
        assert result.converged is False
        where = record[0].filename
        assert not where.endswith(("thurstonian.py", "bradley_terry.py"))
        if "mutmut" not in where:  # mutmut's trampoline adds a frame of its own
            assert where == __file__


def test_flat_enough_reads_the_gradient():
    assert _flat_enough(SimpleNamespace(jac=np.array([1e-4, -5e-4])))
    assert not _flat_enough(SimpleNamespace(jac=np.array([1e-4, -2e-3])))
    assert not _flat_enough(SimpleNamespace())


# ---- the bootstrap ---------------------------------------------------------------------


def test_bootstrap_defaults_and_statistics(synthetic):
    pairs, p, _, _ = synthetic(n=8, n_pairs=40, seed=1, samples=5)
    boot = bootstrap_thurstonian(pairs, p, 8, statistics={"first": lambda f: f.mean[0]})
    assert boot.means.shape == (30, 8)
    np.testing.assert_allclose(boot.stats["first"], boot.means[:, 0])
    same = bootstrap_thurstonian(pairs, p, 8, n_boot=30, seed=0)
    np.testing.assert_array_equal(boot.means, same.means)
    lo, hi = boot.interval()
    np.testing.assert_allclose(lo, np.percentile(boot.means, 2.5, axis=0))
    np.testing.assert_allclose(hi, np.percentile(boot.means, 97.5, axis=0))
    s_lo, s_hi = boot.stat_interval("first")
    assert (s_lo, s_hi) == pytest.approx(tuple(np.percentile(boot.means[:, 0], [2.5, 97.5])))


def test_bootstrap_passes_fit_options_on(synthetic):
    pairs, p, _, _ = synthetic(n=8, n_pairs=40, seed=1, samples=5)
    loose = bootstrap_thurstonian(pairs, p, 8, n_boot=3, seed=2, learn_sigma=False)
    default = bootstrap_thurstonian(pairs, p, 8, n_boot=3, seed=2)
    assert not np.allclose(loose.means, default.means)


def test_bootstrap_can_draw_the_first_pair():
    # outcome 3 appears only in pair 0, where it wins clearly: replicates that drew pair 0
    # put it on top, the others know nothing about it
    pairs = np.array([[3, 0], [0, 1], [1, 2], [2, 0], [1, 0], [2, 1]])
    p = np.array([0.99, 0.7, 0.6, 0.4, 0.3, 0.45])
    boot = bootstrap_thurstonian(pairs, p, 4, n_boot=12, seed=0)
    assert boot.means[:, 3].max() > 1.0


def test_triad_sampling_defaults_to_seed_zero_and_warns_about_nothing():
    k6 = np.array(list(combinations(range(6), 2)))
    p = np.random.default_rng(1).uniform(0.05, 0.95, len(k6))
    np.testing.assert_array_equal(
        sample_triads(k6, 6, max_triads=3), sample_triads(k6, 6, max_triads=3, seed=0)
    )
    np.testing.assert_array_equal(
        triad_cycle_values(k6, p, 6, max_triads=3), triad_cycle_values(k6, p, 6, 3, seed=0)
    )
    assert cycle_probability(k6, p, 6, max_triads=3) == cycle_probability(k6, p, 6, 3, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no mean of an empty slice
        value, n = cycle_probability(np.array([[0, 1]]), np.array([0.6]), 2)
    assert n == 0 and math.isnan(value)


def test_sparse_triangles_end_the_search_within_its_attempts():
    # one triangle among many pendant edges: the sampler stops after 4 * max_triads tries
    pairs = np.array([[0, 1], [1, 2], [0, 2]] + [[0, i] for i in range(3, 40)])
    got = sample_triads(pairs, 40, max_triads=50)
    np.testing.assert_array_equal(got, [[0, 1, 2]])


# the percentile and basic intervals' golden test: tests/test_stats.py
