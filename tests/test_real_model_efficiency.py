"""benchmarks/real_model_efficiency.py: the calibration test of sampled against logprob answers."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def rme():
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(BENCH))
        return importlib.import_module("real_model_efficiency")


def answers(p_first: np.ndarray, draw, k: int = 10) -> tuple[dict, dict]:
    """A logprob table and sampled counts per (pair, order) drawn by `draw(p)`."""
    pairs = np.array([(a, b) for a in range(20) for b in range(a + 1, 20)])[: len(p_first)]
    lp = {"pairs": pairs, "first": p_first}
    n_valid = np.full(p_first.shape, k)
    s = {"pairs": pairs[::-1], "n_first": draw(p_first[::-1]), "n_valid": n_valid}
    return lp, s


def test_binomial_counts_pass_and_overdispersed_or_biased_counts_fail(rme):
    rng = np.random.default_rng(0)
    p = rng.uniform(0.2, 0.6, size=(150, 2))
    lp, s = answers(p, lambda q: rng.binomial(10, q))
    ok = rme.calibration(lp, s)
    assert ok["prompts"] == 300 and ok["samples"] == 3000
    assert ok["dispersion_p"] > 0.01 and ok["first_share_p"] > 0.01
    assert 0.8 < ok["dispersion_chi2"] / ok["dispersion_df"] < 1.2  # binomial variance
    assert ok["share_p_below_05"] < 0.1
    assert abs(ok["first_share_logprob"] - p.mean()) < 1e-9
    # each prompt's sampling P strays from its logprob P by 0.25 either way
    lp, s = answers(p, lambda q: rng.binomial(10, np.clip(q + rng.choice([-0.25, 0.25]), 0, 1)))
    assert rme.calibration(lp, s)["dispersion_p"] < 1e-6
    # sampling leans to the first option by 0.15 everywhere
    lp, s = answers(p, lambda q: rng.binomial(10, q + 0.15))
    biased = rme.calibration(lp, s)
    assert biased["first_share_p"] < 1e-6
    assert biased["first_share_sampled"] > biased["first_share_logprob"] + 0.1


def test_prompts_without_readable_answers_are_left_out(rme):
    p = np.full((40, 2), 0.4)
    lp, s = answers(p, lambda q: np.round(10 * q).astype(int))
    s["n_valid"][:5] = 0
    s["n_first"][:5] = 0
    assert rme.calibration(lp, s)["prompts"] == 70


def test_restrict_keeps_the_pairs_asked_for_in_order(rme):
    pairs = np.array([[0, 1], [2, 3], [1, 4]])
    got = {k: np.arange(3) * 10 for k in rme.PER_PAIR if k != "pairs"}
    kept = rme.restrict({"pairs": pairs, "n": 5, **got}, {(1, 4), (0, 1)})
    assert kept["pairs"].tolist() == [[0, 1], [1, 4]]
    assert kept["p"].tolist() == [0, 20] and kept["n"] == 5
