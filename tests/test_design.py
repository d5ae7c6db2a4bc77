import numpy as np
import pytest

from valuescope.design import (
    check_budget,
    default_budget,
    heldout_size,
    n_all_pairs,
    pair_codes,
    sample_new_codes,
    select_batch,
    split_start,
)
from valuescope.errors import BudgetError
from valuescope.fit import count_components


@pytest.mark.parametrize("n", [3, 10, 36, 503])
def test_start_is_connected_and_disjoint_from_heldout(n):
    rng = np.random.default_rng(0)
    start, held = split_start(n, rng, heldout_size(n))
    assert len(start) == n
    assert count_components(start, n) == 1
    assert not set(pair_codes(start, n)) & set(pair_codes(held, n))
    assert len(set(pair_codes(held, n))) == len(held)


def test_heldout_size_follows_the_reference_rule():
    assert heldout_size(36) == int(0.05 * n_all_pairs(36))
    assert heldout_size(503) == 1000


def test_default_budget_is_two_n_log_n():
    assert default_budget(500) == int(np.ceil(2 * 500 * np.log2(500)))
    assert default_budget(5) == n_all_pairs(5)


def test_budget_below_a_connected_graph_is_refused():
    with pytest.raises(BudgetError, match="smaller than the 50 needed"):
        check_budget(50, 10, 5)
    assert check_budget(10, 10_000, 2) == n_all_pairs(10) - 2


@pytest.mark.parametrize("n", [20, 4000])
def test_sample_new_codes_excludes_and_is_distinct(n):
    rng = np.random.default_rng(1)
    exclude = sample_new_codes(n, 50, np.array([], dtype=np.int64), rng)
    new = sample_new_codes(n, 100, exclude, rng)
    assert len(set(new)) == len(new) == min(100, n_all_pairs(n) - 50)
    assert not set(new) & set(exclude)


def test_active_batch_prefers_close_and_rarely_asked_pairs():
    rng = np.random.default_rng(2)
    n = 60
    mean = np.sort(rng.normal(size=n))
    start, held = split_start(n, rng, 20)
    batch = select_batch(mean, start, pair_codes(held, n), 30, rng)
    assert len(batch) == 30
    codes = set(pair_codes(batch, n))
    assert len(codes) == 30
    assert not codes & set(pair_codes(start, n)) and not codes & set(pair_codes(held, n))
    gaps = np.abs(mean[batch[:, 0]] - mean[batch[:, 1]])
    a, b = np.triu_indices(n, 1)
    assert np.median(gaps) < np.median(np.abs(mean[a] - mean[b])) / 3
