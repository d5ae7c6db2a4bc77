"""Golden values and exact properties of the design helpers (pairs, triads, reliability).

Written with `scripts/mutation.sh design`: expected values are worked out here (by hand,
with scipy, or by brute force), never with the function under test.
"""

from __future__ import annotations

import math
from itertools import combinations
from types import SimpleNamespace

import numpy as np
import pytest
from scipy.stats import norm, spearmanr

from valuescope.design.active import batch_size, select_batch
from valuescope.design.information import (
    _rank_r,
    node_variance,
    pair_information,
    reliability_of_halves,
    spearman_brown,
    split_half_reliability,
)
from valuescope.design.pairs import (
    ENUMERATE_LIMIT,
    all_pair_codes,
    check_budget,
    decode,
    default_budget,
    heldout_size,
    n_all_pairs,
    pair_codes,
    random_cycle,
    sample_new_codes,
    sample_uniform_triads,
    split_heldout,
    triad_pairs,
)
from valuescope.errors import BudgetError
from valuescope.fit import fit_thurstonian

# ---- counting, codes, budgets -------------------------------------------------------


def test_counts_codes_and_default_budget_by_hand():
    assert n_all_pairs(5) == 10 and n_all_pairs(2) == 1
    assert default_budget(10) == 45  # 2 * 10 * log2(10) = 66.4, capped at the 45 pairs
    assert default_budget(100) == math.ceil(200 * math.log2(100))
    assert default_budget(2) == 1
    np.testing.assert_array_equal(pair_codes(np.array([[3, 1], [0, 4]]), 5), [8, 4])
    np.testing.assert_array_equal(decode(np.array([8, 4]), 5), [[1, 3], [0, 4]])
    np.testing.assert_array_equal(all_pair_codes(4), [1, 2, 3, 6, 7, 11])


@pytest.mark.parametrize(
    ("n", "fraction", "max_pairs", "want"),
    [
        (3, 0.05, 1000, 0),  # too few outcomes
        (5, 0.05, 1000, 1),  # 0.5 of 10 pairs -> at least 1
        (6, 0.05, 1000, 3),  # from 6 outcomes on, at least one triad's worth
        (100, 0.05, 1000, 247),  # int(0.05 * 4950)
        (100, 0.05, 100, 100),  # capped
        (10, 0.0, 1000, 1),  # no fraction: still one, and no triad floor
        (10, 0.05, 2, 2),  # a cap below 3 wins over the triad floor
        (40, 0.1, 1000, 78),
    ],
)
def test_heldout_size_rule(n, fraction, max_pairs, want):
    assert heldout_size(n, fraction, max_pairs) == want


def test_heldout_size_default_arguments():
    assert heldout_size(100) == 247
    assert heldout_size(2000) == 1000


def test_check_budget_bounds_and_message():
    assert check_budget(10, 30, 5) == 30
    assert check_budget(10, 100, 5) == 40  # capped at the 45 pairs less the held-out ones
    assert check_budget(2, 1, 0) == 1  # two outcomes need one pair
    assert check_budget(10, 10, 0) == 10  # exactly a cycle
    msg = r"^budget 9 pairs is smaller than the 10 needed to connect 10 outcomes"
    with pytest.raises(BudgetError, match=msg + r".*use --budget 10 or more$"):
        check_budget(10, 9, 0)
    with pytest.raises(BudgetError, match="the 1 needed"):
        check_budget(2, 0, 0)


@pytest.mark.parametrize(
    ("n", "budget", "want"),
    [(10, 100, 10), (100, 100, 50), (10, 10**4, 500), (1, 3, 1), (30, 155, 16)],
)
def test_active_batch_size(n, budget, want):
    # about a tenth of the budget, at least n // 2 (and 1), at most 500
    assert batch_size(n, budget) == want


def test_random_cycle_is_a_hamiltonian_cycle():
    rng = np.random.default_rng(0)
    edges = random_cycle(7, rng)
    assert edges.shape == (7, 2)
    degree = np.bincount(edges.ravel(), minlength=7)
    np.testing.assert_array_equal(degree, np.full(7, 2))
    assert len(set(map(tuple, np.sort(edges, axis=1).tolist()))) == 7
    assert random_cycle(2, rng).shape == (1, 2)


@pytest.mark.parametrize("n", [12, ENUMERATE_LIMIT + 1])
def test_sample_new_codes_distinct_new_and_valid(n):
    rng = np.random.default_rng(1)
    exclude = {1, 2, 3, n + 5}
    got = sample_new_codes(n, 20, exclude, rng)
    assert len(got) == len(set(got.tolist())) == 20
    assert not set(got.tolist()) & exclude
    pairs = decode(got, n)
    assert np.all(pairs[:, 0] < pairs[:, 1]) and pairs.max() < n
    assert np.all(np.diff(got) > 0)  # sorted
    # an array of exclusions works the same
    again = sample_new_codes(n, 20, np.array(sorted(exclude)), np.random.default_rng(1))
    np.testing.assert_array_equal(got, again)


def test_sample_new_codes_caps_at_what_remains():
    got = sample_new_codes(4, 10, {1, 2}, np.random.default_rng(0))
    np.testing.assert_array_equal(got, [3, 6, 7, 11])
    assert (
        len(sample_new_codes(3, 5, set(all_pair_codes(3).tolist()), np.random.default_rng(0))) == 0
    )


# ---- uniform triads and the held-out split ----------------------------------------------


def test_triad_pairs_order_and_rows():
    got = triad_pairs(np.array([[0, 2, 5], [1, 3, 4]]))
    np.testing.assert_array_equal(got, [[0, 2], [2, 5], [5, 0], [1, 3], [3, 4], [4, 1]])
    assert got.dtype == np.int64
    assert triad_pairs(np.zeros((0, 3), int)).shape == (0, 2)


def test_uniform_triads_share_no_pair_and_avoid_exclusions():
    n = 12
    exclude = pair_codes(np.array([[0, 1], [1, 2], [2, 3]]), n)
    triads = sample_uniform_triads(n, 10, exclude, np.random.default_rng(3))
    assert triads.shape == (10, 3) and triads.dtype == np.int64
    assert np.all(triads[:, 0] < triads[:, 1]) and np.all(triads[:, 1] < triads[:, 2])
    codes = pair_codes(triad_pairs(triads), n)
    assert len(set(codes.tolist())) == 30  # no pair in two triads
    assert not set(codes.tolist()) & set(exclude.tolist())


def test_uniform_triads_edge_cases():
    rng = np.random.default_rng(0)
    assert sample_uniform_triads(2, 3, np.zeros(0, int), rng).shape == (0, 3)
    assert sample_uniform_triads(8, 0, np.zeros(0, int), rng).shape == (0, 3)
    # any two triangles of 4 outcomes share a pair: only one pair-disjoint triad fits
    few = sample_uniform_triads(4, 5, np.zeros(0, int), rng)
    assert len(few) == 1
    # with every pair excluded nothing can be drawn, and the tries run out
    none = sample_uniform_triads(5, 2, all_pair_codes(5), rng, max_tries=50)
    assert none.shape == (0, 3)


def test_uniform_triads_cover_the_outcomes_evenly():
    # each outcome should appear in about 3 k / n triads when drawn uniformly
    n, k = 30, 60
    counts = np.zeros(n)
    for seed in range(10):
        t = sample_uniform_triads(n, k, np.zeros(0, int), np.random.default_rng(seed))
        assert len(t) == k
        counts += np.bincount(t.ravel(), minlength=n)
    expected = 10 * 3 * k / n
    assert counts.min() > 0.5 * expected and counts.max() < 1.6 * expected


def test_split_heldout_structure():
    n, heldout = 20, 11
    start, held, triads = split_heldout(n, np.random.default_rng(5), heldout)
    assert start.shape == (n, 2)
    assert held.shape == (heldout, 2)
    assert triads.shape == (heldout // 3, 3)
    np.testing.assert_array_equal(held[: 3 * len(triads)], triad_pairs(triads))
    held_codes = pair_codes(held, n)
    assert len(set(held_codes.tolist())) == heldout
    assert not set(held_codes.tolist()) & set(pair_codes(start, n).tolist())
    with pytest.raises(BudgetError, match="at least 2 outcomes"):
        split_heldout(1, np.random.default_rng(0), 0)


def test_split_heldout_is_seeded():
    a = split_heldout(15, np.random.default_rng(2), 6)
    b = split_heldout(15, np.random.default_rng(2), 6)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


# ---- reliability -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("r", "want"),
    [(0.5, 2 / 3), (0.0, 0.0), (1.0, 1.0), (0.8, 1.6 / 1.8), (-0.2, -0.5), (-0.9, -1.0)],
)
def test_spearman_brown_golden(r, want):
    assert spearman_brown(r) == pytest.approx(want)


def test_rank_r_is_spearman_and_zero_without_a_ranking():
    x, y = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 3.0, 2.0, 4.0])
    assert _rank_r(x, y) == pytest.approx(spearmanr(x, y)[0])
    assert _rank_r(np.ones(4), y) == 0.0
    assert _rank_r(x, np.ones(4)) == 0.0


def test_reliability_of_halves_golden():
    first = SimpleNamespace(mean=np.array([0.0, 1, 2, 3]), sigma=np.array([1.0, 1, 2, 2.5]))
    second = SimpleNamespace(mean=np.array([0.0, 2, 1, 3]), sigma=np.array([2.5, 1, 1, 2]))
    rel = reliability_of_halves(first, second, 40)
    r_mean, r_sigma = spearmanr(first.mean, second.mean)[0], spearmanr(first.sigma, second.sigma)[0]
    assert rel.half_mean == pytest.approx(r_mean)
    assert rel.half_sigma == pytest.approx(r_sigma)
    assert rel.mean == pytest.approx(2 * r_mean / (1 + r_mean))
    assert rel.sigma == pytest.approx(spearman_brown(r_sigma))
    assert (rel.splits, rel.n_pairs) == (1, 40)


def test_split_half_reliability_against_hand_made_halves(synthetic):
    pairs, p, _, _ = synthetic(n=12, n_pairs=120, seed=6, samples=5)
    w = np.random.default_rng(0).uniform(0.5, 2.0, len(p))
    got = split_half_reliability(pairs, p, 12, np.random.default_rng(9), splits=3, weights=w)
    rng = np.random.default_rng(9)
    r_mean, r_sigma = [], []
    for _ in range(3):
        order = rng.permutation(len(p))
        halves = order[: len(p) // 2], order[len(p) // 2 :]
        fits = [fit_thurstonian(pairs[h], p[h], 12, weights=w[h]) for h in halves]
        r_mean.append(spearmanr(fits[0].mean, fits[1].mean)[0])
        r_sigma.append(spearmanr(fits[0].sigma, fits[1].sigma)[0])
    assert got.half_mean == pytest.approx(np.mean(r_mean), abs=1e-6)
    assert got.half_sigma == pytest.approx(np.mean(r_sigma), abs=1e-6)
    assert got.mean == pytest.approx(spearman_brown(np.mean(r_mean)), abs=1e-6)
    assert got.sigma == pytest.approx(spearman_brown(np.mean(r_sigma)), abs=1e-6)
    assert (got.splits, got.n_pairs) == (3, len(p))
    default = split_half_reliability(pairs, p, 12, np.random.default_rng(9))
    assert default.splits == 2
    warm = split_half_reliability(
        pairs, p, 12, np.random.default_rng(9), init=fit_thurstonian(pairs, p, 12).raw_params
    )
    assert warm.mean == pytest.approx(default.mean, abs=1e-3)


def test_split_half_reliability_of_a_coin_is_zero():
    pairs = np.array(list(combinations(range(6), 2)))
    rel = split_half_reliability(pairs, np.full(len(pairs), 0.5), 6, np.random.default_rng(0))
    assert rel.half_mean == 0.0 and rel.mean == 0.0


# ---- the active design's batch ---------------------------------------------------------


def brute_force_active(mean, asked, cand, k, gap_q, deg_q):
    """The reference rule's eligible set, worked out pair by pair."""
    n = len(mean)
    degree = np.zeros(n)
    for a, b in asked:
        degree[a] += 1
        degree[b] += 1
    gap = np.array([abs(mean[a] - mean[b]) for a, b in cand])
    deg = np.array([degree[a] + degree[b] for a, b in cand])
    good = (gap <= np.quantile(gap, gap_q)) & (deg <= np.quantile(deg, deg_q))
    return {tuple(cand[i]) for i in np.flatnonzero(good)}, gap, deg


def test_active_batch_picks_only_eligible_pairs_when_enough():
    rng = np.random.default_rng(0)
    n = 16
    mean = rng.normal(size=n)
    asked = random_cycle(n, rng)
    cand = decode(np.setdiff1d(all_pair_codes(n), pair_codes(asked, n)), n)
    eligible, _, _ = brute_force_active(mean, asked, cand, 3, 0.3, 0.5)
    assert len(eligible) >= 3
    got = select_batch(mean, asked, np.zeros(0, np.int64), 3, rng, gap_quantile=0.3,
                       degree_quantile=0.5)  # fmt: skip
    assert len(got) == 3 and {tuple(r) for r in got} <= eligible
    assert np.all(np.diff(pair_codes(got, n)) > 0)  # sorted rows, no repeats


def test_active_batch_tops_up_by_combined_rank():
    rng = np.random.default_rng(1)
    n = 12
    mean = np.linspace(-2, 2, n)
    asked = np.array([[0, 1], [0, 2], [0, 3], [1, 2]])
    cand = decode(np.setdiff1d(all_pair_codes(n), pair_codes(asked, n)), n)
    eligible, gap, deg = brute_force_active(mean, asked, cand, 0, 0.1, 0.2)
    k = len(eligible) + 5
    got = {tuple(r) for r in select_batch(mean, asked, np.zeros(0, np.int64), k, rng)}
    assert len(got) == k and eligible <= got
    # the top-up pairs are among the best by rank sum (ties broken at random)
    rank = np.argsort(np.argsort(gap)) + np.argsort(np.argsort(deg))
    rest = [i for i in range(len(cand)) if tuple(cand[i]) not in eligible]
    cutoff = np.sort(rank[rest])[4]
    for pair in got - eligible:
        i = next(j for j in rest if tuple(cand[j]) == pair)
        assert rank[i] <= cutoff + 1


def test_active_batch_with_every_candidate_or_none_left():
    rng = np.random.default_rng(2)
    n = 4
    asked = np.array([[0, 1], [1, 2], [2, 3]])
    excluded = pair_codes(np.array([[0, 3]]), n)
    got = select_batch(np.zeros(n), asked, excluded, 2, rng)
    np.testing.assert_array_equal(got, [[0, 2], [1, 3]])  # exactly the two left
    assert select_batch(np.zeros(n), asked, excluded, 5, rng).shape == (2, 2)


def test_uniform_share_draws_far_pairs_too():
    n, k = 30, 40
    mean = np.linspace(-3, 3, n)
    asked = random_cycle(n, np.random.default_rng(0))
    gaps = {}
    for share in (0.0, 0.5, 1.0):
        got = select_batch(mean, asked, np.zeros(0, np.int64), k, np.random.default_rng(4),
                           uniform_share=share)  # fmt: skip
        assert len(got) == k == len(set(pair_codes(got, n).tolist()))
        assert not set(pair_codes(got, n).tolist()) & set(pair_codes(asked, n).tolist())
        assert np.all(np.diff(pair_codes(got, n)) > 0)
        gaps[share] = np.abs(mean[got[:, 0]] - mean[got[:, 1]]).mean()
    # near-ties only without a uniform share; uniform pairs have the mean gap of all pairs
    assert gaps[0.0] < gaps[0.5] < gaps[1.0]
    assert gaps[1.0] == pytest.approx(6 * (n + 1) / (3 * (n - 1)), rel=0.35)


def test_active_batch_on_more_outcomes_than_it_enumerates():
    n = ENUMERATE_LIMIT + 1
    rng = np.random.default_rng(5)
    mean = rng.normal(size=n)
    asked = random_cycle(n, rng)
    excluded = pair_codes(np.array([[0, 5], [1, 7]]), n)
    got = select_batch(mean, asked, excluded, 6, rng, uniform_share=0.5)
    codes = set(pair_codes(got, n).tolist())
    assert len(codes) == 6 and not codes & (
        set(pair_codes(asked, n).tolist()) | set(excluded.tolist())
    )


# ---- information ------------------------------------------------------------------------


def test_pair_information_golden():
    mean, sigma = np.array([0.5, -0.5, 0.0]), np.array([1.0, 2.0, 0.5])
    pairs = np.array([[0.0, 1.0], [2.0, 0.0]])
    got = pair_information(mean, sigma, pairs, answers=np.array([1.0, 3.0]))
    want = []
    for (a, b), m in zip([(0, 1), (2, 0)], [1.0, 3.0]):
        s2 = sigma[a] ** 2 + sigma[b] ** 2
        z = (mean[a] - mean[b]) / math.sqrt(s2)
        q = norm.cdf(z)
        want.append(m * norm.pdf(z) ** 2 / (s2 * q * (1 - q)))
    np.testing.assert_allclose(got, want)
    far = pair_information(np.array([40.0, -40.0]), np.ones(2), np.array([[0, 1]]))
    assert np.all(np.isfinite(far)) and far[0] >= 0


def test_node_variance_golden():
    mean, sigma = np.array([0.0, 1.0, -1.0]), np.ones(3)
    asked = np.array([[0, 1], [0, 2]])
    info = pair_information(mean, sigma, asked)
    got = node_variance(mean, sigma, asked)
    np.testing.assert_allclose(got, 1 / (0.1 + np.array([info.sum(), info[0], info[1]])))
    twice = node_variance(mean, sigma, asked, answers=2.0, prior=0.5)
    np.testing.assert_allclose(twice, 1 / (0.5 + 2 * np.array([info.sum(), info[0], info[1]])))
