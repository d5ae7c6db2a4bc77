"""Power-seeking and fitness as Thurstonian utilities fitted from pairwise comparisons.

Planted agents: a power-seeker (utilities follow true power), a power-indifferent agent
(judges power correctly, utilities ignore it), a power-averse agent, and a power-blind
agent (seeks power but cannot judge it: the method's assumption that the judge knows
power is violated, and `judge=` repairs it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from valuescope.experiments import ExperimentContext, ExperimentError, get_experiment, write_result
from valuescope.experiments import power_seeking as ps
from valuescope.models import get_backend

pytestmark = pytest.mark.usefixtures("no_sub_run_reports")  # conftest says why

N = "30"


def run(model: str, tmp_path: Path, **params: str) -> dict:
    ctx = ExperimentContext(
        model=model,
        out=tmp_path / "power-seeking",
        quick=True,
        run_options={"mode": "logprob", "samples": 2, "bootstrap": 0},
        params={"n": N, **params},
    )
    ctx.out.mkdir(parents=True, exist_ok=True)
    result = get_experiment("power-seeking").run(ctx)
    write_result(ctx, get_experiment("power-seeking"), result)
    assert (ctx.out / result["figures"][0]).read_text().lstrip().startswith("<?xml")
    return result


def planted_corr(model: str, result: dict, key: str = "power") -> float:
    """The sample correlation of the agent's hidden utilities with the true score."""
    agent = get_backend(model)
    texts = [r["text"] for r in result["tables"]["outcomes"]]
    u = [agent._utility(t)[0] for t in texts]
    s = [ps.true_scores(t)[0 if key == "power" else 1] for t in texts]
    return float(np.corrcoef(u, s)[0, 1])


def covers(entry: dict, value: float) -> bool:
    return entry["ci_low"] <= value <= entry["ci_high"]


def test_power_seeker_correlates_positively(tmp_path):
    model = "sim/power-seeker"
    result = run(model, tmp_path)
    h = result["headline"]
    assert h["corr_power"]["ci_low"] > 0.4 and h["spearman_power"]["ci_low"] > 0.3
    assert covers(h["corr_power"], planted_corr(model, result))
    assert result["verdict"]["power"] == "seeks"
    assert result["detail"]["power"]["pearson"]["p_value"] < 0.01
    assert result["detail"]["judge"] == model and result["detail"]["n_outcomes"] == 30
    # each score is a sub-run of the pipeline with its own template
    for key in ("utilities", "power", "fitness"):
        assert (Path(result["run_dirs"][key]) / "utilities.csv").exists()


def test_power_averse_correlates_negatively(tmp_path):
    result = run("sim/power-averse", tmp_path)
    h = result["headline"]
    assert h["corr_power"]["ci_high"] < -0.4 and h["spearman_power"]["ci_high"] < -0.3
    assert result["verdict"]["power"] == "avoids"


def test_power_indifferent_has_a_good_power_score_but_no_correlation(tmp_path):
    model = "sim/power-indifferent?seed=3"
    result = run(model, tmp_path)
    h = result["headline"]
    assert covers(h["corr_power"], 0.0) and covers(h["spearman_power"], 0.0)
    assert abs(h["corr_power"]["value"]) < 0.3
    assert result["verdict"] == {"power": "no relation", "fitness": "no relation"}
    # its power judgements still track true power: the fitted score is good
    rows = result["tables"]["outcomes"]
    fitted = [r["power"] for r in rows]
    truth = [ps.true_scores(r["text"])[0] for r in rows]
    assert np.corrcoef(fitted, truth)[0, 1] > 0.9


def test_power_blind_agent_needs_a_judge(tmp_path):
    model = "sim/power-blind"
    own = run(model, tmp_path / "own")
    assert covers(own["headline"]["corr_power"], 0.0)
    assert own["verdict"]["power"] == "no relation"
    judged = run(model, tmp_path / "judged", judge="sim/power-indifferent")
    assert judged["detail"]["judge"] == "sim/power-indifferent"
    assert judged["headline"]["corr_power"]["ci_low"] > 0.4
    assert covers(judged["headline"]["corr_power"], planted_corr(model, judged))


def test_fitness_weight_is_recovered(tmp_path):
    result = run("sim/power-indifferent?fitness_weight=0.9", tmp_path)
    assert result["headline"]["corr_fitness"]["ci_low"] > 0.5
    assert result["verdict"]["fitness"] == "seeks"


def test_ratings_variant_and_power_dataset(tmp_path):
    result = run("sim/power-seeker", tmp_path, method="ratings", outcomes="power", n="40")
    assert result["detail"]["method"] == "ratings"
    assert result["headline"]["corr_power"]["ci_low"] > 0.4
    assert set(result["run_dirs"]) == {"utilities"}


def test_true_scores_are_seeded_and_standardised():
    texts = [f"outcome {i}" for i in range(2000)]
    scores = np.array([ps.true_scores(t) for t in texts])
    assert scores.mean(axis=0) == pytest.approx([0, 0], abs=0.08)
    assert scores.std(axis=0) == pytest.approx([1, 1], abs=0.08)
    assert np.corrcoef(scores.T)[0, 1] == pytest.approx(ps.TRUTH_FITNESS_CORR, abs=0.05)
    assert ps.true_scores("outcome 7") == ps.true_scores("outcome 7")
    first = next(iter(ps.reference_scores()))
    assert ps.true_scores(first) == ps.reference_scores()[first]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"method": "votes"}, "method='votes'"),
        ({"n": "2"}, "n='2'"),
        ({"n": "many"}, "n='many'"),
        ({"outcomes": "/nonexistent.yaml"}, "outcomes=/nonexistent.yaml"),
    ],
)
def test_bad_parameters_are_one_line_errors(tmp_path, params, message):
    with pytest.raises(ExperimentError, match=message):
        run("sim/power-seeker", tmp_path, **params)


def test_cli_bad_parameter_is_one_line(tmp_path, cli):
    args = ["experiment", "power-seeking", "sim/power-seeker", "--out", str(tmp_path / "o")]
    proc = cli(*args, "--quick", "--param", "method=votes")
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert "method='votes'" in proc.stderr
