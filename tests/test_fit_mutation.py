"""Golden values for the metrics and the fitters' edges, written to kill mutants.

`scripts/mutation.sh` runs these with test_fit.py and test_metrics.py; every expected
number is worked out here by hand or with scipy, never with the function under test.
"""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pytest
from scipy import stats

from valuescope.fit import metrics
from valuescope.fit.metrics import (
    accuracy,
    coin_completeness,
    completeness,
    cycle_probability,
    entropy,
    heldout_metrics,
    kl_divergence,
    log_loss,
    pair_metrics,
    sample_triads,
    triad_cycle_values,
)
from valuescope.fit.thurstonian import fit_thurstonian


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


def test_pair_and_heldout_metrics_bundle_the_three():
    p, q = np.array([0.9, 0.3]), np.array([0.7, 0.4])
    got = pair_metrics(p, q)
    assert got == {"accuracy": 1.0, "log_loss": log_loss(p, q), "kl": kl_divergence(p, q)}
    pairs = np.array([[0, 1], [1, 2], [0, 2]])
    fit = fit_thurstonian(pairs, np.array([0.8, 0.7, 0.9]), 3)
    held = heldout_metrics(fit, pairs, np.array([0.8, 0.7, 0.9]))
    assert held == pair_metrics(np.array([0.8, 0.7, 0.9]), fit.predict(pairs))


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
    none = sample_triads(np.array([[0, 1], [1, 2]]), 3)
    assert none.shape == (0, 3)


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
