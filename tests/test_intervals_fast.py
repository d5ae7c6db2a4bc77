"""Utility intervals in the fast tier: width, resampling and coverage on a planted agent.

One module-level set of small `sim/thurstone` runs (36 outcomes, 150 random pairs, 5
samples per order, 30 bootstrap replicates) serves every test; the agent's hidden
utilities (truth.csv) are what the intervals should cover.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from valuescope.config import RunConfig
from valuescope.fit import fit_thurstonian
from valuescope.fit.bootstrap import BootstrapResult, bootstrap_thurstonian
from valuescope.runcore.pipeline import run

SEEDS = (0, 1, 2, 3)
BUDGET = 150
N = 36


def measure(out: Path, seed: int, budget: int, bootstrap: int = 30) -> dict:
    config = RunConfig(
        model="sim/thurstone", outcomes="demo", out=out, design="random", budget=budget,
        mode="sample", samples=5, bootstrap=bootstrap, stop_at=None, seed=seed,
    )  # fmt: skip
    run(config)
    utilities = pd.read_csv(out / "utilities.csv")
    truth = pd.read_csv(out / "truth.csv")["mean"].to_numpy()
    return {
        "utilities": utilities,
        "truth": (truth - truth.mean()) / truth.std(),  # the fit's scale: mean 0, std 1
        "metrics": json.loads((out / "metrics.json").read_text()),
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("intervals")
    got = {(s, BUDGET): measure(base / f"s{s}", s, BUDGET) for s in SEEDS}
    got[(0, 600)] = measure(base / "large", 0, 600, bootstrap=15)
    return got


def widths(result: dict) -> np.ndarray:
    u = result["utilities"]
    return (u["ci_high"] - u["ci_low"]).to_numpy()


def test_every_interval_holds_its_estimate_and_has_width(runs):
    for result in runs.values():
        u = result["utilities"]
        assert (u["ci_low"] < u["mean"]).all() and (u["mean"] < u["ci_high"]).all()
        assert (widths(result) > 0.05).all()


def test_widths_differ_between_outcomes(runs):
    # outcomes far from the others, or with a large sigma, are pinned down less well
    for seed in SEEDS:
        w = widths(runs[(seed, BUDGET)])
        assert w.max() > 1.3 * w.min(), f"seed {seed}: near-constant widths {w.min():.3f}"
        assert np.std(w) / np.mean(w) > 0.05


def test_widths_shrink_with_four_times_the_pairs(runs):
    small, large = np.median(widths(runs[(0, BUDGET)])), np.median(widths(runs[(0, 600)]))
    # about 1/2 from the pairs, a little more from the smaller widening
    assert large < 0.7 * small, (small, large)
    assert large > 0.25 * small, (small, large)


def test_intervals_are_widened_for_the_parameters_the_fit_spends(runs):
    # E pairs, P = 2N - 2 free parameters: widening sqrt(E / (E - P)), computed here
    for result in runs.values():
        e = result["metrics"]["n_pairs"]  # 600 asks for more than the 599 pairs left
        expected = np.sqrt(e / (e - (2 * N - 2)))
        assert result["metrics"]["bootstrap"]["dof_factor"] == pytest.approx(expected)


def test_coverage_of_the_planted_utilities_is_near_nominal(runs):
    level = runs[(0, BUDGET)]["metrics"]["bootstrap"]["level"]
    assert level == 0.95
    covered = [
        (r["utilities"]["ci_low"] <= r["truth"]) & (r["truth"] <= r["utilities"]["ci_high"])
        for (_, b), r in runs.items()
        if b == BUDGET
    ]
    share = float(np.mean(np.concatenate(covered)))
    # measured 0.95 here; intervals of a never-resampling bootstrap cover nothing, and
    # fixed or halved widths cover far less
    assert 0.85 <= share <= 1.0, share


def test_the_bootstrap_resamples(synthetic):
    pairs, p, _, _ = synthetic(n=12, n_pairs=80, seed=4, samples=5)
    boot = bootstrap_thurstonian(pairs, p, 12, n_boot=6, seed=1)
    assert boot.means.shape == (6, 12)
    # every replicate is its own refit: no two are equal, none equals the full fit
    full = fit_thurstonian(pairs, p, 12).mean
    for i in range(6):
        assert not np.allclose(boot.means[i], full, atol=1e-3)
        for j in range(i):
            assert not np.allclose(boot.means[i], boot.means[j], atol=1e-3)
    # replicates scatter around the full fit: mean close, spread of the right order
    assert np.abs(boot.means.mean(axis=0) - full).max() < 0.6
    assert 0.02 < boot.means.std(axis=0).mean() < 0.6
    again = bootstrap_thurstonian(pairs, p, 12, n_boot=6, seed=1)
    np.testing.assert_array_equal(boot.means, again.means)
    other = bootstrap_thurstonian(pairs, p, 12, n_boot=6, seed=2)
    assert not np.allclose(boot.means, other.means)


def test_bootstrap_interval_and_statistics_percentiles():
    means = np.arange(20, dtype=float).reshape(20, 1) * np.array([[1.0, -2.0]])
    boot = BootstrapResult(means=means, stats={"s": np.array([np.nan, 1.0, 2.0, 3.0, 4.0])})
    lo, hi = boot.interval(0.9)
    np.testing.assert_allclose(lo, [np.percentile(means[:, 0], 5), -2 * 19 * 0.95])
    np.testing.assert_allclose(hi, [19 * 0.95, np.percentile(means[:, 1], 95)])
    s_lo, s_hi = boot.stat_interval("s", 0.5)
    assert (s_lo, s_hi) == (np.percentile([1, 2, 3, 4], 25), np.percentile([1, 2, 3, 4], 75))
    empty = BootstrapResult(means=means, stats={"s": np.array([np.nan])})
    assert all(np.isnan(empty.stat_interval("s")))


def test_normal_interval_uses_the_bootstrap_spread():
    from valuescope.runcore.fit_evaluation import widened_interval

    reps = np.array([[0.0, 1.0], [2.0, 1.0], [4.0, 1.0]])
    low, high = widened_interval(np.array([1.0, 1.0]), reps, 0.9, widen=1.5)
    half = stats.norm.ppf(0.95) * 1.5 * 2.0  # sd (ddof 1) of 0, 2, 4 is 2
    np.testing.assert_allclose(low, [1 - half, 1.0])
    np.testing.assert_allclose(high, [1 + half, 1.0])
