"""The deliberating citizens' assembly (issue 19 item 5): argument vs vote-share rounds on
planted herding and fixed-view citizens, joint census draws, held-out interval size and
the multiple-choice capability set. Fast tier: synthetic citizens only."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from valuescope.control import AssembleConfig, ControlError, assemble, sample_citizens
from valuescope.control.capability import (
    LETTERS,
    capability_mc_figures,
    load_questions,
)
from valuescope.control.census import joint_tables, marginals
from valuescope.control.power import agreement_interval, planned_halfwidth
from valuescope.models import get_backend


def _assembly(tmp_path, model: str, **kw) -> dict:
    config = AssembleConfig(
        model=model,
        out=tmp_path / model.replace("/", "_").replace("?", "_"),
        citizens=kw.pop("citizens", 15),
        pairs=kw.pop("pairs", 60),
        topic_pairs=0,
        heldout_topic="none",
        **kw,
    )
    return assemble(config)


# ------------------------------------------------------------------ deliberation modes


def test_arguments_and_votes_differ_on_herding_citizens(tmp_path):
    herd = _assembly(tmp_path, "sim/citizen-herd")["modes"]
    # vote shares only: herding citizens copy the majority, unanimity jumps
    assert herd["votes"]["unanimous_change"]["ci_low"] > 0.2
    # arguments from both sides hold them back: measurably less herding than votes only
    diff = herd["unanimous_change_arguments_minus_votes"]
    assert diff["ci_high"] < -0.05, diff
    # the same first votes under both modes
    assert herd["arguments"]["unanimous_first"] == herd["votes"]["unanimous_first"]


def test_fixed_view_citizens_do_not_move_in_either_mode(tmp_path):
    fixed = _assembly(tmp_path, "sim/citizen-fixed")["modes"]
    for mode in ("arguments", "votes"):
        assert fixed[mode]["unanimous_change"]["value"] == 0.0
        assert fixed[mode]["majority_final"] == fixed[mode]["majority_first"]
    assert fixed["final_majorities_agree"]["value"] == 1.0


def test_arguments_are_default_cached_and_read_back(tmp_path):
    out = tmp_path / "a"
    config = AssembleConfig(
        model="sim/citizen-herd", out=out, citizens=6, pairs=8, topic_pairs=0, heldout_topic="none"
    )
    first = assemble(config)
    assert first["settings"]["deliberation"] == "arguments"
    import json

    shown = json.loads((out / "arguments.json").read_text())
    assert len(shown) == 1 and all(1 <= len(a) <= 4 for a in shown[0])
    assert all(a.startswith("I prefer ") for args in shown[0] for a in args)
    again = assemble(config)
    assert again["n_queries_new"] == 0 and again["modes"] == first["modes"]


def test_bad_deliberation_settings_fail_in_one_line(tmp_path):
    with pytest.raises(
        ControlError, match="--deliberation 'talk': Input should be 'arguments' or 'votes'"
    ):
        assemble(AssembleConfig(out=tmp_path / "x", deliberation="talk"))
    with pytest.raises(ControlError, match="needs --arguments 1"):
        assemble(AssembleConfig(out=tmp_path / "y", arguments=0))


def test_cli_reports_both_modes(cli, tmp_path):
    proc = cli(
        "control", "assemble", "sim/citizen-herd", "--out", str(tmp_path / "c"),
        "--citizens", "6", "--pairs", "10", "--topic-pairs", "0", "--deliberation", "votes",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "labels from: votes" in proc.stdout and "arguments minus votes" in proc.stdout
    bad = cli("control", "assemble", "--out", str(tmp_path / "d"), "--deliberation", "talk")
    assert bad.returncode != 0 and "Traceback" not in bad.stderr


# ------------------------------------------------------------------ joint census


def test_joint_tables_keep_the_cross_tab_correlations():
    citizens = sample_citizens(6000, seed=4)
    young = [c.party for c in citizens if c.age < 30]
    older = [c.party for c in citizens if 45 <= c.age <= 64]
    dem = {"democrat", "lean_democrat"}
    share_young = sum(p in dem for p in young) / len(young)
    share_older = sum(p in dem for p in older) / len(older)
    assert share_young - share_older > 0.08  # table: 0.48 vs 0.41
    rich = Counter(c.education for c in citizens if c.income == "over_150k")
    poor = Counter(c.education for c in citizens if c.income == "under_25k")
    assert rich["graduate"] / sum(rich.values()) > 3 * poor["graduate"] / sum(poor.values())
    # the marginals stay those of census.yaml
    shares = marginals()
    counts = Counter(c.party for c in citizens)
    for level, share in shares["party"].items():
        assert abs(counts[level] / len(citizens) - share) < 0.025
    assert {(r, c) for r, c, _ in joint_tables()} == {("age", "party"), ("education", "income")}


# ------------------------------------------------------------------ held-out interval size


def test_default_heldout_agreement_interval_is_under_ten_points(tmp_path):
    defaults = AssembleConfig()
    n_held = round(defaults.pairs * defaults.heldout_fraction)
    assert n_held == 120 and planned_halfwidth(n_held) < 0.091
    assert planned_halfwidth(40) > 0.10  # the old default (10 held out) was far wider
    summary = _assembly(
        tmp_path, "sim/citizen", citizens=5, pairs=defaults.pairs, rounds=1, compare=False
    )
    assert summary["n_pairs"]["heldout"] == 120
    import pandas as pd

    labels = pd.read_csv(tmp_path / "sim_citizen" / "labels.csv")
    held = labels[labels["split"] == "heldout"]
    model = get_backend("sim/citizen?conformity=0", seed=5)  # a citizen with no persona
    p = np.array(
        [
            0.5 * (model.p_first(a, b) + 1 - model.p_first(b, a))
            for a, b in zip(held["outcome_a"], held["outcome_b"])
        ]
    )
    result = agreement_interval(p, held["p_assembly"].to_numpy())
    assert result["n"] == 120 and result["half_width"] < 0.10, result


# ------------------------------------------------------------------ capability questions


def test_capability_question_set_and_scoring():
    questions = load_questions()
    assert len(questions) >= 40
    assert set(Counter(q.kind for q in questions)) == {"knowledge", "arithmetic", "reading"}
    assert min(Counter(q.key for q in questions).values()) >= 8  # keys spread over letters
    assert "A. " in questions[0].prompt() and questions[0].prompt().endswith("Answer:")
    key = [q.key for q in questions]
    wrong = [LETTERS[(LETTERS.index(k) + 1) % 4] for k in key]
    fig = capability_mc_figures({"before": key, "after": wrong}, questions)
    assert fig["accuracy_before"]["value"] == 1.0 and fig["accuracy_after"]["value"] == 0.0
    assert fig["accuracy_after"]["ci_high"] < 0.1
    assert fig["accuracy_change"]["value"] == -1.0
    half = [k if i % 2 else w for i, (k, w) in enumerate(zip(key, wrong))]
    mid = capability_mc_figures({"before": half}, questions)["accuracy_before"]
    assert mid["ci_low"] < 0.5 < mid["ci_high"] and mid["ci_high"] - mid["ci_low"] < 0.32
