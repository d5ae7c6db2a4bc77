"""benchmarks/prompt_candidates.py: its candidate templates, subset and paired comparison."""

from __future__ import annotations

import importlib
import warnings
from pathlib import Path

import numpy as np
import pytest

from valuescope.config import RunConfig
from valuescope.design import heldout_size, n_all_pairs
from valuescope.elicit import get_template
from valuescope.outcomes import load_outcomes
from valuescope.runcore.pipeline import run

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def pc():
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(BENCH))
        return importlib.import_module("prompt_candidates")


def test_candidate_templates_render_both_options_in_order(pc):
    users = set()
    for cand in pc.CANDIDATES:
        template = get_template(cand.template)
        messages = template.render("The cat sleeps.", "The dog barks.")
        user = messages[-1][1]
        assert user.index("The cat sleeps.") < user.index("The dog barks.")
        assert all(label in user for label in template.labels)
        users.add((messages, cand.prefill))
    assert len(users) == len(pc.CANDIDATES)  # every configuration asks something different


def test_main_subset_holds_its_valence_labels(pc, tmp_path):
    subset = load_outcomes(str(pc.main_subset(tmp_path / "main40.yaml")))
    assert len(subset) == pc.MAIN_SUBSET_SIZE
    assert set(pc.MAIN_GOOD + pc.MAIN_BAD) <= set(subset.texts)
    assert len(set(subset.categories)) > 10  # drawn across the set, not one category


@pytest.fixture(scope="module")
def held(pc, tmp_path_factory):
    """The held-out table of a small sim run with the benchmark's fixed design."""
    out = tmp_path_factory.mktemp("pc") / "run"
    n = 12
    fraction = (15 + 0.5) / n_all_pairs(n)
    config = RunConfig(
        model="sim/thurstone",
        outcomes=_twelve(out.parent),
        mode="logprob",
        design="random",
        budget=30,
        stop_at=None,
        bootstrap=0,
        heldout_fraction=fraction,
        out=out,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        metrics = run(config).metrics
    assert metrics["n_heldout_pairs"] == heldout_size(n, fraction) == 15
    return pc.heldout_table(out, n, metrics["n_heldout_pairs"], 0), metrics


def _twelve(folder: Path) -> str:
    path = folder / "twelve.txt"
    path.write_text("\n".join(load_outcomes("demo").texts[:12]) + "\n", encoding="utf-8")
    return str(path)


def test_heldout_table_matches_the_run(held):
    table, metrics = held
    assert len(table) == 15 and table["unit"].nunique() == 5  # 5 triads of 3 pairs
    assert table["completeness"].mean() == pytest.approx(metrics["completeness"])
    assert table["heldout_accuracy"].mean() == pytest.approx(metrics["heldout_accuracy"])
    # p is the mean of the two orders' P(a > b)
    np.testing.assert_allclose(table["p"], (table["original"] + table["swapped"]) / 2)
    agree = (table["original"] > 0.5) == (table["swapped"] > 0.5)
    np.testing.assert_array_equal(table["order_agree"], agree.astype(float))


def test_paired_differences_are_zero_against_itself_and_find_a_shift(pc, held):
    table, _ = held
    same = pc.paired_differences(table, table.copy())
    for name in pc.PAIRED:
        assert same[f"d_{name}"] == 0.0 and same[f"d_{name}_ci"] == [0.0, 0.0]
    shifted = table.copy()
    shifted["completeness"] += 0.1
    diff = pc.paired_differences(table, shifted)
    assert diff["d_completeness"] == pytest.approx(0.1)
    low, high = diff["d_completeness_ci"]
    assert low == pytest.approx(0.1) and high == pytest.approx(0.1)
    with pytest.raises(SystemExit, match="differ"):
        pc.paired_differences(table, table.iloc[:-1])
