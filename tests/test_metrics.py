import numpy as np
import pytest

from valuescope.fit import (
    accuracy,
    coin_completeness,
    completeness,
    cycle_probability,
    kl_divergence,
    log_loss,
)


def test_accuracy_counts_ties_as_half():
    assert accuracy(np.array([0.9, 0.1, 0.5]), np.array([0.8, 0.7, 0.9])) == pytest.approx(0.5)
    assert accuracy(np.full(10, 0.5), np.linspace(0, 1, 10)) == 0.5


def test_log_loss_and_kl():
    p = np.array([0.2, 0.7, 1.0])
    assert kl_divergence(p, p) == pytest.approx(0.0, abs=1e-9)
    assert log_loss(p, np.full(3, 0.5)) == pytest.approx(np.log(2))
    assert kl_divergence(p, np.array([0.5, 0.5, 0.5])) > 0


@pytest.mark.parametrize("n", [1, 2, 5, 10, 20])
def test_coin_completeness_matches_simulation(n):
    rng = np.random.default_rng(n)
    sim = completeness(rng.binomial(n, 0.5, 200_000) / n)
    assert coin_completeness(n) == pytest.approx(sim, abs=0.003)


def test_coin_completeness_known_values():
    assert coin_completeness(0) == 0.5
    assert coin_completeness(1) == 1.0
    assert coin_completeness(2) == pytest.approx(0.75)


def test_cycle_probability_random_and_transitive():
    n = 12
    a, b = np.triu_indices(n, 1)
    pairs = np.stack([a, b], 1)
    prob, triads = cycle_probability(pairs, np.full(len(pairs), 0.5), n)
    assert prob == pytest.approx(0.25) and triads > 50
    transitive, _ = cycle_probability(pairs, np.ones(len(pairs)), n)  # lower id always wins
    assert transitive == 0.0


def test_cycle_probability_sees_a_planted_cycle():
    pairs = np.array([[0, 1], [1, 2], [2, 0]])
    prob, triads = cycle_probability(pairs, np.ones(3), 3)
    assert triads == 1 and prob == 1.0


def test_no_triads_gives_nan():
    prob, triads = cycle_probability(np.array([[0, 1], [1, 2]]), np.array([0.5, 0.5]), 3)
    assert triads == 0 and np.isnan(prob)
