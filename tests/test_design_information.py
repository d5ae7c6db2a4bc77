import numpy as np
import pytest

from valuescope.design import heldout_size, n_all_pairs, pair_codes, split_start
from valuescope.design.information import (
    estimated_spearman,
    needs_more_answers,
    node_variance,
    order_entropy,
    pair_information,
    select_batch,
)


@pytest.mark.parametrize("n", [12, 60, 3100])
def test_batch_is_new_distinct_and_not_held_out(n):
    rng = np.random.default_rng(0)
    mean = rng.normal(size=n)
    sigma = rng.uniform(0.2, 1.0, n)
    start, held = split_start(n, rng, heldout_size(n))
    k = min(40, n_all_pairs(n) - len(start) - len(held))
    batch = select_batch(mean, start, pair_codes(held, n), k, rng, sigma=sigma)
    codes = pair_codes(batch, n)
    assert batch.shape == (k, 2)
    assert len(set(codes.tolist())) == k
    assert np.all(batch[:, 0] != batch[:, 1])
    assert not set(codes.tolist()) & set(pair_codes(start, n).tolist())
    assert not set(codes.tolist()) & set(pair_codes(held, n).tolist())


def test_returns_every_candidate_when_fewer_remain_than_asked_for():
    n = 5
    rng = np.random.default_rng(1)
    start, held = split_start(n, rng, 2)
    batch = select_batch(np.zeros(n), start, pair_codes(held, n), 100, rng)
    assert len(batch) == n_all_pairs(n) - len(start) - len(held)


def test_prefers_the_close_pair_of_unasked_outcomes():
    # outcomes 0-3 are well measured; 4 and 5 were asked once each, and 4-5 look tied
    mean = np.array([-1.5, -0.5, 0.5, 1.5, 0.0, 0.02])
    asked = np.array([[0, 1], [1, 2], [2, 3], [3, 0], [0, 2], [1, 3], [0, 4], [3, 5]] * 1)
    rng = np.random.default_rng(2)
    batch = select_batch(mean, asked, np.array([], dtype=np.int64), 1, rng)
    assert batch.tolist() == [[4, 5]]


def test_prefers_close_pairs_and_spreads_over_outcomes():
    rng = np.random.default_rng(3)
    n = 60
    mean = np.sort(rng.normal(size=n))
    start, held = split_start(n, rng, 20)
    batch = select_batch(mean, start, pair_codes(held, n), 30, rng)
    gaps = np.abs(mean[batch[:, 0]] - mean[batch[:, 1]])
    a, b = np.triu_indices(n, 1)
    assert np.median(gaps) < np.median(np.abs(mean[a] - mean[b])) / 3


def test_a_pick_makes_its_outcomes_less_attractive_within_the_batch():
    # 0-1 and 1-2 are the closest pairs, but once one of them is chosen, outcome 1 is
    # better known and the slightly wider 3-4 gap is the more uncertain order
    mean = np.array([0.0, 1.0, 2.0, 10.0, 11.2])
    empty = np.zeros((0, 2), dtype=np.int64)
    batch = select_batch(mean, empty, np.array([], dtype=np.int64), 2, np.random.default_rng(8))
    assert [3, 4] in batch.tolist()


def test_same_seed_same_batch():
    n = 40
    mean = np.random.default_rng(4).normal(size=n)
    start, held = split_start(n, np.random.default_rng(5), 10)
    runs = [
        select_batch(mean, start, pair_codes(held, n), 15, np.random.default_rng(6))
        for _ in range(2)
    ]
    np.testing.assert_array_equal(runs[0], runs[1])


def test_information_peaks_at_a_tie_and_is_symmetric():
    mean = np.array([0.0, 0.0, 1.0, 3.0])
    sigma = np.ones(4)
    info = pair_information(mean, sigma, np.array([[0, 1], [0, 2], [0, 3], [2, 0]]))
    assert info[0] > info[1] > info[2] > 0
    assert info[1] == pytest.approx(info[3])
    assert pair_information(mean, sigma, np.array([[0, 1]]), answers=4.0)[0] == pytest.approx(
        4 * info[0]
    )


def test_variance_shrinks_with_more_pairs_and_entropy_with_the_gap():
    mean, sigma = np.zeros(3), np.ones(3)
    few = node_variance(mean, sigma, np.array([[0, 1]]))
    more = node_variance(mean, sigma, np.array([[0, 1], [0, 2], [1, 2]]))
    assert np.all(more < few)
    assert few[2] == pytest.approx(1 / 0.1)  # never asked: the prior alone
    h = order_entropy(np.array([0.0, 0.5, 2.0]), np.ones(3))
    assert h[0] == pytest.approx(np.log(2)) and h[0] > h[1] > h[2]


def test_estimated_spearman_is_one_when_nothing_moved_and_falls_with_change():
    rng = np.random.default_rng(7)
    base = rng.normal(size=200)
    assert estimated_spearman(base, base, 100, 150) == pytest.approx(1.0)
    small = estimated_spearman(base, base + 0.05 * rng.normal(size=200), 100, 150)
    large = estimated_spearman(base, base + 0.5 * rng.normal(size=200), 100, 150)
    assert 1.0 > small > large
    # the same change after a smaller batch means more error is left
    assert estimated_spearman(base, base + 0.05 * rng.normal(size=200), 100, 110) < small


def test_estimated_spearman_needs_more_pairs_than_before():
    with pytest.raises(ValueError, match="must exceed n_previous"):
        estimated_spearman(np.arange(5.0), np.arange(5.0), 10, 10)


def test_needs_more_answers_marks_split_answers():
    marked = needs_more_answers(np.array([0.0, 0.5, 1.0, 0.25]))
    assert marked.tolist() == [False, True, False, True]
