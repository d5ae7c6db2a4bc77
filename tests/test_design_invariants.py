"""Invariants every design keeps, asserted on real runs of `sim/thurstone`.

Training and held-out pairs are disjoint; every outcome is in training; no pair is asked
twice; budgets are respected; the query count is what the pairs imply. Read from the
run's own files (pairs.csv, metrics.json), as a user would.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from valuescope.config import RunConfig
from valuescope.design.pairs import heldout_size, n_all_pairs
from valuescope.runcore.pipeline import run

N = 36  # outcomes in the demo set


def unordered(frame: pd.DataFrame) -> set[tuple[int, int]]:
    return {(min(a, b), max(a, b)) for a, b in zip(frame["a"], frame["b"])}


def measured(out: Path, design: str, budget: int | None, seed: int, **extra) -> tuple:
    config = RunConfig(
        model="sim/thurstone", outcomes="demo", out=out, design=design, budget=budget,
        bootstrap=0, stop_at=None, seed=seed, **extra,
    )  # fmt: skip
    run(config)
    pairs = pd.read_csv(out / "pairs.csv")
    metrics = json.loads((out / "metrics.json").read_text())
    return pairs[pairs["split"] == "train"], pairs[pairs["split"] == "heldout"], metrics


def check_common(train: pd.DataFrame, held: pd.DataFrame, metrics: dict) -> None:
    n = metrics["n_outcomes"]
    assert n == N
    train_set, held_set = unordered(train), unordered(held)
    assert len(train_set) == len(train), "a training pair is asked twice"
    assert len(held_set) == len(held), "a held-out pair is asked twice"
    assert not train_set & held_set, f"held-out pairs in training: {sorted(train_set & held_set)}"
    assert (train["a"] != train["b"]).all() and (held["a"] != held["b"]).all()
    assert set(train["a"]) | set(train["b"]) == set(range(n)), "an outcome is never trained on"
    assert len(held) == heldout_size(n) == metrics["n_heldout_pairs"]
    assert metrics["n_pairs"] == len(train)
    assert metrics["n_queries"] == 2 * (len(train) + len(held))  # logprob: one per order


@pytest.mark.parametrize("seed", [0, 3])
@pytest.mark.parametrize("design", ["random", "active"])
def test_budgeted_designs_keep_the_invariants(tmp_path, design, seed):
    train, held, metrics = measured(tmp_path, design, 120, seed)
    check_common(train, held, metrics)
    assert len(train) == metrics["budget"] == 120


def test_full_design_asks_every_pair_but_the_held_out_ones(tmp_path):
    train, held, metrics = measured(tmp_path, "full", None, 1)
    check_common(train, held, metrics)
    assert len(train) + len(held) == n_all_pairs(N)


@pytest.mark.parametrize("design", ["random", "active"])
def test_a_budget_above_the_pairs_left_is_capped_and_keeps_held_out_pairs_out(tmp_path, design):
    # with nearly every pair in training, a design that ignored the held-out set would
    # almost surely pick some of its pairs
    train, held, metrics = measured(tmp_path, design, 10 * n_all_pairs(N), 2)
    check_common(train, held, metrics)
    assert len(train) == n_all_pairs(N) - len(held) == metrics["budget"]


def test_sample_mode_query_count_follows_samples(tmp_path):
    train, held, metrics = measured(tmp_path, "random", 60, 0, mode="sample", samples=3)
    assert metrics["n_queries"] == 2 * 3 * (len(train) + len(held))
    assert (train["n_answers"] == 6).all() and (held["n_answers"] == 6).all()
    assert len(train) == 60


def test_active_design_stopping_early_stays_within_budget(tmp_path):
    config = dict(model="sim/thurstone", outcomes="demo", design="active", bootstrap=0)
    out = tmp_path / "stop"
    run(RunConfig(**config, out=out, budget=300, stop_at=0.5, seed=0))
    pairs = pd.read_csv(out / "pairs.csv")
    metrics = json.loads((out / "metrics.json").read_text())
    train = pairs[pairs["split"] == "train"]
    check_common(train, pairs[pairs["split"] == "heldout"], metrics)
    assert metrics["stopping"]["stopped_early"]
    assert N <= len(train) < 300
    asked = [h[0] for h in metrics["stopping"]["history"]]
    assert asked == sorted(asked) and asked[-1] == len(train)
    assert np.all(np.diff(asked) > 0)
