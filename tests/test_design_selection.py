"""Which pairs the designs choose, pinned on small hand-made inputs.

The expectations come from the rules as the docstrings state them, recomputed here from
scratch (scipy.stats.norm for the Thurstonian terms, a naive re-score-everything greedy),
never from the functions under test.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest
from scipy.stats import chisquare, norm, spearmanr

from valuescope.design import active, information
from valuescope.design.pairs import (
    ENUMERATE_LIMIT,
    all_pair_codes,
    decode,
    pair_codes,
    sample_new_codes,
    sample_uniform_triads,
)
from valuescope.fit import fit_thurstonian

NONE = np.zeros(0, dtype=np.int64)


# ---- a reference for the information-based batch ----------------------------------------


def _info(mean, sigma, a, b, answers):
    s2 = sigma[a] ** 2 + sigma[b] ** 2
    z = (mean[a] - mean[b]) / np.sqrt(s2)
    q = norm.cdf(z)
    return answers * norm.pdf(z) ** 2 / (s2 * q * (1 - q))


def _entropy(gap, var_gap):
    p = norm.cdf(abs(gap) / np.sqrt(var_gap))
    return -(p * np.log(p) + (1 - p) * np.log(1 - p))


def _reference_batch(mean, sigma, asked, excluded, k, answers=1.0, prior=0.1):
    """Naive greedy: re-score every candidate after each pick, take the best."""
    n = len(mean)
    precision = np.full(n, prior)
    for a, b in asked:
        precision[a] += _info(mean, sigma, a, b, answers)
        precision[b] += _info(mean, sigma, a, b, answers)
    var = 1.0 / precision
    used = {min(a, b) * n + max(a, b) for a, b in asked} | set(int(c) for c in excluded)
    cand = [(a, b) for a, b in combinations(range(n), 2) if a * n + b not in used]
    chosen: list[tuple[int, int]] = []
    for _ in range(min(k, len(cand))):
        left = [c for c in cand if c not in chosen]
        a, b = max(left, key=lambda c: _entropy(mean[c[0]] - mean[c[1]], var[c[0]] + var[c[1]]))
        chosen.append((a, b))
        info = _info(mean, sigma, a, b, answers)
        var[a] = 1.0 / (1.0 / var[a] + info)
        var[b] = 1.0 / (1.0 / var[b] + info)
    return sorted(chosen)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("k", [1, 3, 7])
def test_information_batch_matches_a_naive_greedy(seed, k):
    rng = np.random.default_rng(seed)
    n = 9
    mean = rng.normal(size=n)
    sigma = rng.uniform(0.3, 1.5, n)
    asked = np.array([[i, (i + 1) % n] for i in range(n)] + [[0, 4], [2, 7]])
    excluded = pair_codes(np.array([[1, 5], [3, 8]]), n)
    answers, prior = 2.5, 0.3
    got = information.select_batch(
        mean, asked, excluded, k, rng, sigma=sigma, answers=answers, prior=prior
    )
    want = _reference_batch(mean, sigma, asked, excluded, k, answers, prior)
    assert got.tolist() == [list(p) for p in want]


def test_information_batch_default_sigma_answers_and_prior():
    # the defaults are sigma = 1, one answer per pair and prior 0.1
    rng = np.random.default_rng(11)
    n = 8
    mean = rng.normal(size=n)
    asked = np.array([[0, 1], [1, 2], [2, 3], [0, 2], [0, 3], [1, 3]])
    got = information.select_batch(mean, asked, NONE, 4, rng)
    want = _reference_batch(mean, np.ones(n), asked, NONE, 4)
    assert got.tolist() == [list(p) for p in want]


def test_a_pick_shrinks_its_outcomes_so_the_next_pick_goes_elsewhere():
    # 0-1 is the closest pair (gap 0.01), then 1-2 (0.02), then 3-4 (0.025).
    # Without the update the batch would be {0-1, 1-2}; with it outcome 1 is settled
    # enough that 3-4 wins the second place (checked by the reference as well).
    mean = np.array([0.0, 0.01, 0.03, 1.0, 1.025])
    sigma = np.ones(5)
    want = _reference_batch(mean, sigma, np.zeros((0, 2), int), NONE, 2, answers=50.0)
    assert want == [(0, 1), (3, 4)]
    got = information.select_batch(
        mean, np.zeros((0, 2)), NONE, 2, np.random.default_rng(0), answers=50.0
    )
    assert got.tolist() == [[0, 1], [3, 4]]


def test_information_batch_breaks_exact_ties_at_random():
    # 0-1, 1-2 and 2-3 have the same gap (1) and the same variances: the one pick is
    # random among them. (Gaps of exactly 0 are not randomised: 0 * (1 + noise) is 0.)
    seen = []
    for seed in range(90):
        got = information.select_batch(np.arange(4.0), NONE, NONE, 1, np.random.default_rng(seed))
        seen.append(tuple(got[0]))
    counts = np.array([seen.count(p) for p in [(0, 1), (1, 2), (2, 3)]])
    assert counts.sum() == 90 and counts.min() > 0
    assert chisquare(counts).pvalue > 1e-3


def test_information_batch_size_and_sorted_rows():
    rng = np.random.default_rng(4)
    n = 10
    mean = rng.normal(size=n)
    for k in (1, 5, 44):
        got = information.select_batch(mean, NONE, NONE, k, np.random.default_rng(k))
        assert got.shape == (k, 2)
        assert np.all(got[:, 0] < got[:, 1])
        codes = pair_codes(got, n)
        assert np.all(np.diff(codes) > 0)
    # fewer candidates than k: every candidate, none repeated
    everything = information.select_batch(mean, NONE, NONE, 45, rng)
    np.testing.assert_array_equal(pair_codes(everything, n), all_pair_codes(n))


def test_information_batch_looks_past_the_first_thousand_when_k_is_large():
    # 50 outcomes: 1225 candidates; k = 60 scores the top 1200 (20 k), all of them fit
    rng = np.random.default_rng(6)
    n = 50
    mean = np.sort(rng.normal(size=n))
    got = information.select_batch(mean, NONE, NONE, 60, rng)
    assert len(got) == 60 and len(set(pair_codes(got, n).tolist())) == 60


def test_node_variance_and_information_by_hand():
    mean = np.array([0.0, 1.0, -0.5])
    sigma = np.array([1.0, 0.5, 2.0])
    asked = np.array([[0, 1], [1, 2], [0, 1]])
    i01 = _info(mean, sigma, 0, 1, 3.0)
    i12 = _info(mean, sigma, 1, 2, 3.0)
    want = 1.0 / (0.2 + np.array([2 * i01, 2 * i01 + i12, i12]))
    got = information.node_variance(mean, sigma, asked, 3.0, 0.2)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    np.testing.assert_allclose(
        information.pair_information(mean, sigma, asked, 3.0), [i01, i12, i01], rtol=1e-12
    )
    np.testing.assert_allclose(
        information.order_entropy(np.array([0.7]), np.array([2.0])),
        [_entropy(0.7, 2.0)],
        rtol=1e-12,
    )


def test_candidate_pairs_are_the_unasked_unexcluded_ones():
    n = 6
    asked = np.array([[1, 0], [2, 3]])
    excluded = pair_codes(np.array([[4, 5]]), n)
    got = information.candidate_pairs(n, asked, excluded, np.random.default_rng(0))
    want = [p for p in combinations(range(n), 2) if p not in {(0, 1), (2, 3), (4, 5)}]
    assert got.tolist() == [list(p) for p in want]


def test_candidate_pairs_sample_when_outcomes_are_many(monkeypatch):
    monkeypatch.setattr(information, "CANDIDATES", 500)
    n = ENUMERATE_LIMIT + 1
    asked = np.array([[0, 1]])
    excluded = np.array([2, 3], dtype=np.int64)
    got = information.candidate_pairs(n, asked, excluded, np.random.default_rng(0))
    codes = pair_codes(got, n)
    assert len(codes) == 500 == len(set(codes.tolist()))
    assert not {1, 2, 3} & set(codes.tolist())


# ---- the reference (active) rule ---------------------------------------------------------


def _gap_deg(mean, asked, pairs):
    degree = np.bincount(np.asarray(asked, int).ravel(), minlength=len(mean))
    gap = np.array([abs(mean[a] - mean[b]) for a, b in pairs])
    deg = np.array([degree[a] + degree[b] for a, b in pairs])
    return gap, deg


def test_active_batch_draws_from_the_close_and_little_asked_set():
    # 8 outcomes on a line; 0..3 asked a lot. The good set: gaps in the lowest 10% and
    # degree sums in the lowest 20% of the candidates.
    n = 8
    mean = np.array([0.0, 0.1, 0.2, 0.3, 5.0, 5.05, 12.0, 12.02])
    asked = np.array([[0, 1], [1, 2], [2, 3], [0, 2], [1, 3], [0, 3]])
    cand = [p for p in combinations(range(n), 2) if p not in {tuple(x) for x in asked}]
    gap, deg = _gap_deg(mean, asked, cand)
    good = {
        cand[i]
        for i in np.flatnonzero((gap <= np.quantile(gap, 0.10)) & (deg <= np.quantile(deg, 0.20)))
    }
    assert good == {(4, 5), (6, 7)}
    for seed in range(5):
        got = active.select_batch(mean, asked, NONE, 2, np.random.default_rng(seed))
        assert {tuple(p) for p in got.tolist()} == good
        got = active.select_batch(mean, asked, NONE, 1, np.random.default_rng(seed))
        assert tuple(got[0]) in good


def test_active_batch_tops_up_by_combined_rank():
    # the good set is {4-5, 6-7}; the third pick is the best sum of gap rank and degree
    # rank among the rest: 5-6 is not close, 3-4 ... computed below by ranks
    n = 8
    mean = np.array([0.0, 0.1, 0.2, 0.3, 5.0, 5.05, 12.0, 12.02])
    asked = np.array([[0, 1], [1, 2], [2, 3], [0, 2], [1, 3], [0, 3]])
    cand = [p for p in combinations(range(n), 2) if p not in {tuple(x) for x in asked}]
    gap, deg = _gap_deg(mean, asked, cand)
    gap_rank = np.argsort(np.argsort(gap))
    deg_rank = np.argsort(np.argsort(deg))
    total = gap_rank + deg_rank
    good = [(4, 5), (6, 7)]
    rest = sorted((int(total[i]), cand[i]) for i in range(len(cand)) if cand[i] not in good)
    assert rest[0][0] < rest[1][0]  # no tie for the third place
    got = active.select_batch(mean, asked, NONE, 3, np.random.default_rng(0))
    assert sorted(map(tuple, got.tolist())) == sorted(good + [rest[0][1]])


def test_active_quantiles_change_the_set():
    mean = np.array([0.0, 0.1, 0.2, 0.3, 5.0, 5.05, 12.0, 12.02])
    asked = np.array([[0, 1], [1, 2], [2, 3], [0, 2], [1, 3], [0, 3]])
    # with every gap and degree allowed, the pick is uniform over all candidates
    seen = set()
    for seed in range(60):
        got = active.select_batch(
            mean,
            asked,
            NONE,
            1,
            np.random.default_rng(seed),
            gap_quantile=1.0,
            degree_quantile=1.0,
        )
        seen.add(tuple(got[0]))
    assert len(seen) > 10


def test_active_uniform_share_mixes_in_uniform_pairs():
    n = 8
    mean = np.array([0.0, 0.1, 0.2, 0.3, 5.0, 5.05, 12.0, 12.02])
    asked = np.array([[0, 1], [1, 2], [2, 3], [0, 2], [1, 3], [0, 3]])
    cand = [p for p in combinations(range(n), 2) if p not in {tuple(x) for x in asked}]
    good = {(4, 5), (6, 7)}
    far = 0
    for seed in range(40):
        got = {
            tuple(p)
            for p in active.select_batch(
                mean, asked, NONE, 4, np.random.default_rng(seed), uniform_share=0.5
            ).tolist()
        }
        assert len(got) == 4 and got <= set(cand)
        # two active picks: at least one of the good set (the other two may be uniform)
        assert got & good
        far += len(got - good)
    # half of each batch is uniform over 22 candidates: most batches hold 2+ others
    assert far >= 40 * 2 * 0.8
    # share 1 (or more, clipped): all uniform; share 0 (or less): all active
    for share in (1.0, 3.0):
        draws = [
            tuple(p)
            for seed in range(60)
            for p in active.select_batch(
                mean, asked, NONE, 2, np.random.default_rng(seed), uniform_share=share
            ).tolist()
        ]
        assert len(set(draws)) > 12
    for share in (0.0, -2.0):
        got = active.select_batch(
            mean, asked, NONE, 2, np.random.default_rng(1), uniform_share=share
        )
        assert {tuple(p) for p in got.tolist()} == good


def test_active_uniform_share_rounds_the_count():
    # k = 4 and share 0.3: round(1.2) = 1 uniform pick, 3 active ones (good set of 2,
    # then the best ranked): with a tiny k the two active picks of the good set always
    # appear
    mean = np.array([0.0, 0.1, 0.2, 0.3, 5.0, 5.05, 12.0, 12.02])
    asked = np.array([[0, 1], [1, 2], [2, 3], [0, 2], [1, 3], [0, 3]])
    for seed in range(20):
        got = {
            tuple(p)
            for p in active.select_batch(
                mean, asked, NONE, 4, np.random.default_rng(seed), uniform_share=0.3
            ).tolist()
        }
        assert {(4, 5), (6, 7)} <= got and len(got) == 4


def test_active_batch_avoids_held_out_and_returns_all_when_few_remain():
    n = 5
    asked = np.array([[0, 1], [1, 2], [2, 3], [3, 4], [4, 0]])
    excluded = pair_codes(np.array([[0, 2], [1, 3]]), n)
    got = active.select_batch(np.zeros(n), asked, excluded, 10, np.random.default_rng(0))
    assert got.tolist() == [[0, 3], [1, 4], [2, 4]]
    one = active.select_batch(np.zeros(n), asked, excluded, 2, np.random.default_rng(0))
    assert len(one) == 2 and {tuple(p) for p in one.tolist()} <= {(0, 3), (1, 4), (2, 4)}
    assert np.all(np.diff(pair_codes(one, n)) > 0)


def test_active_batch_samples_candidates_when_outcomes_are_many(monkeypatch):
    monkeypatch.setattr(active, "CANDIDATES", 300)
    n = ENUMERATE_LIMIT + 1
    rng = np.random.default_rng(0)
    mean = rng.normal(size=n)
    asked = np.array([[0, 1], [2, 3]])
    got = active.select_batch(mean, asked, np.array([5], np.int64), 20, rng)
    codes = pair_codes(got, n)
    assert len(set(codes.tolist())) == 20
    assert not {1, 2 * n + 3, 5} & set(codes.tolist())


# ---- large-N sampling and the triad rejection loop --------------------------------------


def test_sample_new_codes_large_n_exact_count_and_exclusions():
    n = ENUMERATE_LIMIT + 1
    exclude = set(range(1, 4 * n, 7))
    for k in (1, 37):
        got = sample_new_codes(n, k, exclude, np.random.default_rng(k))
        assert len(got) == k == len(set(got.tolist()))
        assert not set(got.tolist()) & exclude
        pairs = decode(got, n)
        assert np.all(pairs[:, 0] < pairs[:, 1]) and pairs.max() < n
        assert got.dtype == np.int64 and np.all(np.diff(got) > 0)
    assert len(sample_new_codes(n, 0, exclude, np.random.default_rng(0))) == 0


def test_uniform_triads_respect_max_tries_exactly():
    rng = np.random.default_rng(0)
    assert sample_uniform_triads(9, 3, NONE, rng, max_tries=0).shape == (0, 3)
    # the first try always succeeds with nothing excluded
    assert len(sample_uniform_triads(9, 3, NONE, rng, max_tries=1)) == 1
    # K5 holds at most two pair-disjoint triangles
    assert len(sample_uniform_triads(5, 3, NONE, rng)) == 2
    assert len(sample_uniform_triads(9, 3, NONE, rng)) == 3
    exact = sample_uniform_triads(40, 25, NONE, rng)
    assert exact.shape == (25, 3)


def test_uniform_triads_are_uniform_over_triples():
    # one triad from 5 outcomes: each of the 10 triples equally likely
    triples = list(combinations(range(5), 3))
    counts = np.zeros(len(triples))
    for seed in range(300):
        t = sample_uniform_triads(5, 1, NONE, np.random.default_rng(seed))
        counts[triples.index(tuple(t[0]))] += 1
    assert chisquare(counts).pvalue > 1e-3


def test_uniform_triads_skip_triples_that_touch_an_exclusion():
    n = 4
    # exclude 0-1: only the triads without that pair ({0,2,3}, {1,2,3}) can be drawn
    exclude = pair_codes(np.array([[0, 1]]), n)
    seen = set()
    for seed in range(40):
        t = sample_uniform_triads(n, 1, exclude, np.random.default_rng(seed))
        seen.add(tuple(t[0]))
    assert seen == {(0, 2, 3), (1, 2, 3)}


# ---- the two halves of split-half reliability -------------------------------------------


def _spearman_brown(r):
    r = max(r, -1 / 3)
    return 2 * r / (1 + r)


@pytest.mark.parametrize("e", [41, 42])
def test_split_half_fits_the_two_halves_of_one_permutation(e):
    rng = np.random.default_rng(3)
    n = 8
    truth = np.linspace(-1.5, 1.5, n)
    pairs = np.array([rng.choice(n, 2, replace=False) for _ in range(e)])
    p = norm.cdf((truth[pairs[:, 0]] - truth[pairs[:, 1]]) / np.sqrt(2))
    p = np.clip(p + rng.normal(0, 0.15, e), 0.01, 0.99)
    got = information.split_half_reliability(pairs, p, n, np.random.default_rng(9), splits=2)
    # the same draws by hand: permutation, first floor(E / 2) items, then the rest
    ref = np.random.default_rng(9)
    r_mean, r_sigma = [], []
    for _ in range(2):
        order = ref.permutation(e)
        halves = (order[: e // 2], order[e // 2 :])
        assert len(halves[0]) + len(halves[1]) == e and len(halves[0]) == e // 2
        fits = [fit_thurstonian(pairs[h], p[h], n) for h in halves]
        r_mean.append(spearmanr(fits[0].mean, fits[1].mean)[0])
        r_sigma.append(spearmanr(fits[0].sigma, fits[1].sigma)[0])
    assert got.half_mean == pytest.approx(np.mean(r_mean), abs=1e-9)
    assert got.half_sigma == pytest.approx(np.mean(r_sigma), abs=1e-9)
    assert got.mean == pytest.approx(_spearman_brown(np.mean(r_mean)), abs=1e-9)
    assert got.sigma == pytest.approx(_spearman_brown(np.mean(r_sigma)), abs=1e-9)
    assert (got.splits, got.n_pairs) == (2, e)


# ---- edges found by mutation testing ------------------------------------------------------


def test_active_degree_is_the_sum_of_both_endpoints():
    # 0-1 is the closest pair but both ends were asked a lot (degree sum 6, difference 0);
    # 4-5 is a little wider with unasked ends: the little-asked rule must pick 4-5
    mean = np.array([0.0, 0.01, 3.0, 6.0, 9.0, 9.03])
    asked = np.array([[0, 2], [0, 3], [0, 4], [1, 2], [1, 3], [1, 5]])
    for seed in range(5):
        got = active.select_batch(
            mean,
            asked,
            NONE,
            1,
            np.random.default_rng(seed),
            gap_quantile=0.2,
            degree_quantile=0.2,
        )
        assert got.tolist() == [[4, 5]]


def test_active_zero_gap_quantile_keeps_the_closest_pair():
    # gap_quantile 0: the good set is the pairs whose gap equals the smallest (<=, not <)
    mean = np.array([0.0, 0.5, 1.5, 3.0, 3.02])
    asked = np.array([[3, 0], [3, 1], [4, 0], [4, 1]])  # 3-4 (the closest) has degree 4
    for seed in range(5):
        got = active.select_batch(
            mean,
            asked,
            NONE,
            1,
            np.random.default_rng(seed),
            gap_quantile=0.0,
            degree_quantile=1.0,
        )
        assert got.tolist() == [[3, 4]]


def test_active_top_up_breaks_rank_ties_at_random():
    # four outcomes in a row of equal gaps, none asked: with an empty good set
    # (quantile 0 of the degree is 0 = every degree, but gap quantile 0 keeps only the
    # single smallest float gap), the top-up among equal combined ranks must vary
    mean = np.array([0.0, 10.0, 20.0, 30.0, 40.0, 50.0])
    seen = set()
    for seed in range(30):
        got = active.select_batch(
            mean,
            NONE.reshape(0, 2),
            NONE,
            3,
            np.random.default_rng(seed),
            gap_quantile=0.0,
            degree_quantile=0.0,
        )
        seen.add(tuple(map(tuple, got.tolist())))
    assert len(seen) > 1


def test_active_uniform_share_returns_k_pairs_even_above_one():
    mean = np.array([0.0, 0.1, 0.2, 0.3, 5.0, 5.05, 12.0, 12.02])
    asked = np.array([[0, 1], [1, 2], [2, 3], [0, 2], [1, 3], [0, 3]])
    for share in (0.5, 1.0, 2.0, 5.0):
        got = active.select_batch(
            mean, asked, NONE, 3, np.random.default_rng(0), uniform_share=share
        )
        assert got.shape == (3, 2) and len(set(pair_codes(got, 8).tolist())) == 3


def test_active_a_single_uniform_pick_is_uniform():
    # k = 3, share 0.34: one uniform pick, two active ones. Without the uniform pick the
    # batch is always the good set plus the best ranked pair; with it the third varies.
    mean = np.array([0.0, 0.1, 0.2, 0.3, 5.0, 5.05, 12.0, 12.02])
    asked = np.array([[0, 1], [1, 2], [2, 3], [0, 2], [1, 3], [0, 3]])
    batches = set()
    for seed in range(30):
        got = active.select_batch(
            mean, asked, NONE, 3, np.random.default_rng(seed), uniform_share=0.34
        )
        batches.add(tuple(pair_codes(got, 8).tolist()))
    assert len(batches) > 4


def test_active_enumerates_up_to_the_limit(monkeypatch):
    # at exactly ENUMERATE_LIMIT outcomes every pair is a candidate (no sampling of 5)
    monkeypatch.setattr(active, "ENUMERATE_LIMIT", 10)
    monkeypatch.setattr(active, "CANDIDATES", 5)
    got = active.select_batch(np.zeros(10), NONE, NONE, 6, np.random.default_rng(0))
    assert len(got) == 6
    monkeypatch.setattr(active, "ENUMERATE_LIMIT", 9)  # sampling: only 5 candidates
    got = active.select_batch(np.zeros(10), NONE, NONE, 6, np.random.default_rng(0))
    assert len(got) == 5


def test_rank_r_constant_or_undefined_is_zero_without_warnings():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert information._rank_r(np.zeros(4), np.arange(4.0)) == 0.0
        assert information._rank_r(np.arange(4.0), np.ones(4)) == 0.0
    # a spread of exactly 1 is not constant
    assert information._rank_r(np.array([0.0, 1.0, 0.5]), np.array([1.0, 3.0, 2.0])) == 1.0
    assert information._rank_r(np.array([1.0, 0.0, 0.5]), np.array([1.0, 2.0, 1.5])) == -1.0
    assert information._rank_r(np.array([0.0, 1.0, np.nan]), np.arange(3.0)) == 0.0


def test_estimated_spearman_and_spearman_brown_by_hand():
    # ranks 1 2 3 4 vs 1 2 4 3: rho = 1 - 6 * 2 / (4 * 15) = 0.8, so moved = 0.2
    prev, cur = np.array([1.0, 2, 3, 4]), np.array([1.0, 2, 4, 3])
    assert information.estimated_spearman(prev, cur, 100, 150) == pytest.approx(
        1 - 2.0 * 0.2 * 100 / 50
    )
    assert information.estimated_spearman(prev, cur, 100, 150, safety=1.0) == pytest.approx(
        1 - 0.2 * 100 / 50
    )
    assert information.spearman_brown(0.5) == pytest.approx(2 * 0.5 / 1.5)
    assert information.spearman_brown(1.5) == 1.0  # clipped at 1
    assert information.spearman_brown(-0.9) == pytest.approx(-1.0)


def test_small_n_edges_of_budget_heldout_and_triads():
    from valuescope.design.pairs import check_budget, split_heldout
    from valuescope.errors import BudgetError

    with pytest.raises(BudgetError, match="the 3 needed"):
        check_budget(3, 2, 0)
    start, held, triads = split_heldout(2, np.random.default_rng(0), 0)
    assert start.shape == (1, 2) and held.shape == (0, 2) and triads.shape == (0, 3)
    assert sample_uniform_triads(3, 1, NONE, np.random.default_rng(0)).tolist() == [[0, 1, 2]]


def test_a_pick_shrinks_its_first_outcome_too():
    # the mirror of the test above: 0-1 first, then 0-2 (sharing outcome 0, the first of
    # the picked pair) loses to 3-4 once outcome 0 is settled
    mean = np.array([0.01, 0.0, 0.03, 1.0, 1.025])
    want = _reference_batch(mean, np.ones(5), np.zeros((0, 2), int), NONE, 2, answers=50.0)
    assert want == [(0, 1), (3, 4)]
    got = information.select_batch(
        mean, np.zeros((0, 2)), NONE, 2, np.random.default_rng(0), answers=50.0
    )
    assert got.tolist() == [[0, 1], [3, 4]]


def test_information_batch_default_is_one_answer_per_pair():
    # second place: 1-2 under one answer per pair, 3-4 under two (the reference shows the
    # example is sensitive to the weight); the default must be one answer
    mean = np.array([0.0, 0.01, 0.03, 1.0, 1.026])
    none = np.zeros((0, 2), int)
    one = _reference_batch(mean, np.ones(5), none, NONE, 2, answers=1.0)
    two = _reference_batch(mean, np.ones(5), none, NONE, 2, answers=2.0)
    assert one == [(0, 1), (1, 2)] and two == [(0, 1), (3, 4)]
    got = information.select_batch(mean, none, NONE, 2, np.random.default_rng(0))
    assert got.tolist() == [[0, 1], [1, 2]]
    # and a weight of two answers reaches the variance update as well
    got = information.select_batch(mean, none, NONE, 2, np.random.default_rng(0), answers=2.0)
    assert got.tolist() == [[0, 1], [3, 4]]


def test_information_candidates_enumerate_up_to_the_limit(monkeypatch):
    monkeypatch.setattr(information, "ENUMERATE_LIMIT", 10)
    monkeypatch.setattr(information, "CANDIDATES", 5)
    got = information.candidate_pairs(10, NONE.reshape(0, 2), NONE, np.random.default_rng(0))
    assert len(got) == 45


def test_pairs_small_n_edges():
    from valuescope.design.pairs import heldout_size, split_start
    from valuescope.errors import BudgetError

    assert heldout_size(4) == 1 and heldout_size(3) == 0
    assert heldout_size(6, max_pairs=3) == 3
    start, held = split_start(2, np.random.default_rng(0), 0)
    assert start.shape == (1, 2) and held.shape == (0, 2)
    with pytest.raises(BudgetError, match="at least 2 outcomes are needed, got 1"):
        split_start(1, np.random.default_rng(0), 0)
    assert len(sample_new_codes(12, 0, set(), np.random.default_rng(0))) == 0
    got = sample_new_codes(4, 10, np.array([1, 1, 2, 2]), np.random.default_rng(0))
    np.testing.assert_array_equal(got, [3, 6, 7, 11])


def test_sample_new_codes_large_n_reaches_outcome_zero_and_skips_exclusions():
    n = ENUMERATE_LIMIT + 1
    rng = np.random.default_rng(0)
    got = sample_new_codes(n, 20_000, set(), rng)
    assert 0 in set(decode(got, n).ravel().tolist())
    # every pair touching outcomes 0..99 excluded: about 6.6% of draws hit them
    low = np.arange(100)
    a, b = np.meshgrid(low, np.arange(n), indexing="ij")
    excl = set(pair_codes(np.stack([a.ravel(), b.ravel()], 1)[a.ravel() != b.ravel()], n).tolist())
    got = sample_new_codes(n, 300, excl, rng)
    assert len(got) == 300 and not set(got.tolist()) & excl
