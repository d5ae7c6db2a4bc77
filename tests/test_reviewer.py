"""Numbers a reviewer would trust: intervals, sensitivity, refusal policy, breakdowns."""

import json

import numpy as np
import pandas as pd
import pytest

from valuescope.config import RunConfig
from valuescope.design import decode, heldout_size, pair_codes, sample_new_codes, split_start
from valuescope.elicit import ElicitSettings, aggregate, build_queries, get_template
from valuescope.models import get_backend
from valuescope.outcomes import load_outcomes
from valuescope.report import build_report
from valuescope.runcore.fit_evaluation import evaluate
from valuescope.runcore.pipeline import run
from valuescope.runcore.sensitivity import sensitivity


def _coverage(seed: int, level: float, over: str) -> float:
    outcomes = load_outcomes("demo")
    n = len(outcomes)
    backend = get_backend("sim/thurstone", seed=seed)
    rng = np.random.default_rng(seed)
    start, held = split_start(n, rng, heldout_size(n))
    used = np.concatenate([pair_codes(start, n), pair_codes(held, n)])
    pairs = np.concatenate([start, decode(sample_new_codes(n, 300 - n, used, rng), n)])
    settings = ElicitSettings(mode="sample", samples=5)
    queries = build_queries(outcomes.texts, pairs, get_template("default"), settings)
    answers = aggregate(pairs, backend.answer(queries), settings)
    result = evaluate(
        answers, None, n, outcomes.categories, bootstrap=100, over=over, seed=seed, level=level
    )
    truth = backend.truth(outcomes.texts)["mean"].to_numpy()
    truth = (truth - truth.mean()) / truth.std()
    lo, hi = result.per_outcome["ci_low"].to_numpy(), result.per_outcome["ci_high"].to_numpy()
    return float(np.mean((truth >= lo) & (truth <= hi)))


@pytest.mark.slow
def test_ninety_percent_intervals_cover_the_truth():
    coverage = np.mean([_coverage(seed, 0.90, "pairs") for seed in range(8)])
    assert 0.85 <= coverage <= 0.95


def test_every_metric_has_an_interval(tmp_path):
    m = run(
        RunConfig(
            model="sim/thurstone",
            outcomes="demo",
            mode="sample",
            samples=3,
            bootstrap=20,
            out=tmp_path,
        )
    ).metrics
    for key in (
        "heldout_accuracy",
        "heldout_log_loss",
        "heldout_kl",
        "completeness",
        "position_bias",
        "refusal_rate",
        "cycle_prob",
    ):
        lo, hi = m["intervals"][key]
        assert lo <= hi, key
    assert (
        m["intervals"]["heldout_accuracy"][0]
        <= m["heldout_accuracy"]
        <= m["intervals"]["heldout_accuracy"][1]
    )


def test_sensitivity_recovers_planted_bias_and_flags_noisy_template(tmp_path):
    model = "sim/thurstone?position_bias=0.2&template_noise=1.5&noisy_template=paraphrase-terse"
    templates = ["default", "paraphrase-world", "paraphrase-terse", "labels-12", "no-system"]
    result = sensitivity(
        RunConfig(model=model, outcomes="demo", mode="sample", samples=3, budget=200, out=tmp_path),
        templates,
    )
    table = result.templates.set_index("template")
    assert table["position_bias"].to_numpy() == pytest.approx(0.6, abs=0.04)
    assert result.summary["flagged_noisy"] == ["paraphrase-terse"]
    assert (
        table.loc["paraphrase-terse", "flip_share"]
        > 2 * table.drop("paraphrase-terse")["flip_share"].max()
    )
    saved = json.loads((tmp_path / "sensitivity.json").read_text())
    assert saved["flagged_noisy"] == ["paraphrase-terse"]
    utilities = pd.read_csv(tmp_path / "sensitivity_utilities.csv")
    assert set(templates) <= set(utilities.columns) and "pooled" in utilities.columns


def test_sensitivity_flags_nothing_without_planted_noise(tmp_path):
    result = sensitivity(
        RunConfig(model="sim/thurstone", outcomes="demo", budget=150, out=tmp_path),
        ["default", "paraphrase-world", "labels-12", "no-system"],
    )
    assert result.summary["flagged_noisy"] == []
    assert result.summary["mean_pairwise_spearman"] > 0.95


def test_pooled_templates_ask_each_template(tmp_path):
    m = run(
        RunConfig(
            model="sim/thurstone",
            outcomes="demo",
            template="default,labels-12",
            bootstrap=0,
            out=tmp_path,
        )
    ).metrics
    assert m["n_queries"] == 2 * 2 * (m["n_pairs"] + m["n_heldout_pairs"])
    assert m["truth"]["spearman"] > 0.97


@pytest.mark.parametrize("policy", ["indifference", "drop", "separate"])
def test_refusal_policies_are_reported(tmp_path, policy):
    m = run(
        RunConfig(
            model="sim/thurstone?refusal_rate=0.3",
            outcomes="demo",
            mode="sample",
            samples=3,
            refusals=policy,
            bootstrap=0,
            out=tmp_path,
        ),
        report=build_report,
    ).metrics
    assert m["refusal_policy"] == policy
    assert set(m["refusal_policies"]) == {"indifference", "drop"}
    # the refit under the run's own policy ("separate" fits as "drop") is the reported fit;
    # the other policy moves the utilities, but only a little at 30% random refusals
    own = "indifference" if policy == "indifference" else "drop"
    other = "drop" if own == "indifference" else "indifference"
    assert m["refusal_policies"][own]["spearman_with_reported"] == pytest.approx(1.0)
    assert 0.8 < m["refusal_policies"][other]["spearman_with_reported"] < 1.0
    utilities = pd.read_csv(tmp_path / "utilities.csv")
    assert utilities["refusal_rate"].mean() == pytest.approx(0.3, abs=0.05)
    report = (tmp_path / "report.html").read_text()
    # every report names all three policies in its comparison; this line names the one used
    assert f"Refusal policy: <strong>{policy}</strong>" in report


def test_dropping_refusals_sharpens_preferences(tmp_path):
    cfg = dict(
        model="sim/thurstone?refusal_rate=0.4",
        outcomes="demo",
        mode="sample",
        samples=4,
        bootstrap=0,
    )
    ind = run(RunConfig(refusals="indifference", out=tmp_path / "i", **cfg)).metrics
    drop = run(RunConfig(refusals="drop", out=tmp_path / "d", **cfg)).metrics
    assert drop["completeness"] > ind["completeness"]


def test_per_category_breakdown(tmp_path):
    result = run(RunConfig(model="sim/thurstone", outcomes="demo", bootstrap=10, out=tmp_path))
    cats = result.metrics["categories"]
    assert set(cats) == set(load_outcomes("demo").categories)
    total = sum(c["n_outcomes"] for c in cats.values())
    assert total == 36
    for entry in cats.values():
        lo, hi = entry["mean_utility_interval"]
        assert lo <= hi
        assert (
            0 <= entry["heldout_accuracy"] <= 1 if entry["heldout_accuracy"] is not None else True
        )
