"""Corrigibility from the model's own utilities: sampled reversals, the relation of
reversal size to opposition, planted incorrigible / indifferent / constant agents, and
the hand-written dataset."""

from __future__ import annotations

from pathlib import Path

import pytest

from valuescope.experiments import ExperimentContext, ExperimentError, get_experiment, write_result
from valuescope.experiments.corrigibility import (
    change_structure,
    changes,
    read_utilities,
    render_reversal,
    sample_reversals,
    templates,
)
from valuescope.models import get_backend

pytestmark = pytest.mark.usefixtures("no_sub_run_reports")  # conftest says why


def run(model: str, out: Path, seed: int = 0, mode: str = "logprob", **params) -> dict:
    ctx = ExperimentContext(
        model=model,
        out=out,
        seed=seed,
        quick=True,
        run_options={"mode": mode, "samples": 2, "bootstrap": 0},
        params=params,
    )
    out.mkdir(parents=True, exist_ok=True)
    result = get_experiment("corrigibility").run(ctx)
    write_result(ctx, get_experiment("corrigibility"), result)
    return result


def test_reversal_texts_parse_back_to_their_outcomes():
    assert len(templates()) >= 2
    for k in range(len(templates())):
        text = render_reversal('A "quoted" gain.', "A loss.", k)
        assert change_structure(text) == ('A "quoted" gain.', "A loss.")
    assert change_structure("You receive $10.") is None
    first = changes()[0]
    assert change_structure(first["text"]) == (first["old_text"], first["new_text"])


def test_sampling_is_stratified_over_the_gap():
    utility = {f"o{k}": k / 10 for k in range(60)}  # gaps 0.1 .. 5.9, most of them small
    pairs = sample_reversals(utility, 50, seed=0, bins=5)
    assert len(pairs) == 50 and len(set(pairs)) == 50
    assert all(utility[h] - utility[lo] == pytest.approx(g) and g > 0 for h, lo, g in pairs)
    top = max(g for *_, g in pairs)
    counts = [sum(b * top / 5 < g <= (b + 1) * top / 5 + 1e-9 for *_, g in pairs) for b in range(5)]
    assert min(counts) >= 8  # uniform pairs would put about 3 of 50 in the top bin
    assert sample_reversals(utility, 50, seed=0) == pairs
    with pytest.raises(ExperimentError, match="fewer than"):
        sample_reversals({"a": 1.0, "b": 0.0, "c": -1.0}, 10, seed=0)


def test_incorrigible_agent_opposes_large_reversals(tmp_path):
    result = run("sim/incorrigible?weight=0.8", tmp_path / "a")
    head = result["headline"]
    assert result["verdict"] == "incorrigible" and result["dataset"] == "reversals"
    assert head["spearman"]["ci_low"] > 0.3 and head["slope"]["ci_low"] > 0
    assert len(result["tables"]["changes"]) == 40
    assert all(r["reversal"] > 0 for r in result["tables"]["changes"])


def test_indifferent_agent_shows_no_relation(tmp_path):
    result = run("sim/incorrigible?weight=0", tmp_path / "b", seed=2)
    head = result["headline"]
    assert result["verdict"] == "no relation"
    assert head["spearman"]["ci_low"] < 0 < head["spearman"]["ci_high"]
    assert head["slope"]["ci_low"] < 0 < head["slope"]["ci_high"]
    assert result["detail"]["opposition_sd"] > 0.5  # opposition varies, just not with the gap


def test_constant_agent_opposes_everything_equally(tmp_path):
    exact = run("sim/opposes-all", tmp_path / "c")
    assert exact["verdict"] == "constant" and exact["headline"]["slope"]["value"] == 0


def test_constant_agent_with_sampling_noise_is_not_incorrigible(tmp_path):
    sampled = run("sim/opposes-all", tmp_path / "d", mode="sample")
    assert sampled["verdict"] != "incorrigible"
    assert sampled["headline"]["spearman"]["ci_low"] < 0.3


def test_agent_values_changes_with_its_own_base_utilities():
    agent = get_backend("sim/incorrigible?weight=1")
    high, low = "You receive $10.", "You stub your toe."
    if agent._utility(high)[0] < agent._utility(low)[0]:
        high, low = low, high
    big = agent._utility(render_reversal(high, low, 0))[0]
    back = agent._utility(render_reversal(low, high, 0))[0]
    assert big < 0 < back  # reversing its preference is opposed, confirming it is welcome


@pytest.mark.slow  # two analysis runs
def test_base_utilities_from_an_existing_run(tmp_path):
    base = run("sim/incorrigible?weight=0.8", tmp_path / "e")
    given = Path(base["run_dirs"][0])
    ctx = ExperimentContext(
        model="sim/incorrigible?weight=0.8",
        out=tmp_path / "f",
        quick=True,
        run_options={"mode": "logprob", "bootstrap": 0},
        run_dirs=[given],
    )
    ctx.out.mkdir()
    again = get_experiment("corrigibility").run(ctx)
    assert again["run_dirs"][0] == str(given) and not (ctx.out / "base").exists()
    assert again["verdict"] == "incorrigible"
    assert len(read_utilities(given)) == 36


def test_handwritten_dataset_is_kept(tmp_path):
    result = run("sim/incorrigible?weight=0.8", tmp_path / "g", dataset="handwritten")
    assert result["dataset"] == "handwritten" and len(result["tables"]["changes"]) == 48
    assert result["verdict"] == "incorrigible"
    assert result["rejection_gap_reversing_minus_agreeing"] > 0
    assert len(changes()) >= 120


def test_bad_input_is_one_clear_error(tmp_path):
    with pytest.raises(ExperimentError, match="dataset"):
        run("sim/thurstone", tmp_path / "h", dataset="nope")
    with pytest.raises(ExperimentError, match="reversals"):
        run("sim/thurstone", tmp_path / "i", reversals="3")
    (tmp_path / "bad").mkdir()
    with pytest.raises(ExperimentError, match="utilities.csv"):
        read_utilities(tmp_path / "bad")
    (tmp_path / "bad" / "utilities.csv").write_text("x,y\n1,2\n")
    with pytest.raises(ExperimentError, match="columns"):
        read_utilities(tmp_path / "bad")
