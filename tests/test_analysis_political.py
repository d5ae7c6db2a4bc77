"""Political values: a policy-preference template, simulated political agents, and the
model's position on a PCA of all utility vectors with a bootstrap interval over policies.

Planted agents: `sim/partisan?lean=-1` and `lean=1` (utilities follow the left/right
coding: must land beside their own side's politicians on PC1) and `sim/nonpartisan`
(utilities driven by an axis unrelated to left/right: must sit at neither pole, with a
lean score whose interval covers 0). The statistic is checked at full size (137 policies,
37 agents) on the planted utilities plus fit-sized noise, and end to end through the
pipeline at a small size.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from valuescope.agents.political import planted_utilities
from valuescope.elicit.cache import query_key
from valuescope.elicit.prompts import get_template
from valuescope.experiments import ExperimentContext, ExperimentError, get_experiment, write_result
from valuescope.experiments.political import (
    align,
    lean_score,
    load_personas,
    load_policies,
    placement,
    position_null,
    zscore_rows,
)
from valuescope.models import get_backend

pytestmark = pytest.mark.usefixtures("no_sub_run_reports")  # conftest says why

LEANS = np.array([a.lean for a in load_personas()])
TEXTS = [p.text for p in load_policies()]


def planted_matrix(model: str, seed: int = 0, noise: float = 0.3) -> np.ndarray:
    """Row 0 the agent alone, then the agent under every persona; plus estimation noise."""
    agent = get_backend(model)
    rows = [planted_utilities(agent, TEXTS)]
    rows += [planted_utilities(agent, TEXTS, a.text) for a in load_personas()]
    rng = np.random.default_rng(seed)
    return np.array(rows) + rng.normal(scale=noise, size=(len(rows), len(TEXTS)))


def run(model: str, out: Path, **params: str) -> dict:
    ctx = ExperimentContext(
        model=model,
        out=out,
        quick=True,
        run_options={"mode": "logprob", "bootstrap": 0},
        params={"topics": "5", "personas": "bernie_sanders,keir_starmer,donald_trump,marine_le_pen"}
        | params,
    )
    out.mkdir(parents=True, exist_ok=True)
    result = get_experiment("political").run(ctx)
    write_result(ctx, get_experiment("political"), result)
    return result


# ----------------------------------------------------------------- data and template


def test_dataset_is_at_least_the_papers_size():
    policies = load_policies()
    topics = {p.topic for p in policies}
    assert len(policies) >= 136 and len(topics) >= 18
    assert len({p.text for p in policies}) == len(policies)
    for topic in topics:  # both sides in every topic: a lean cannot come from topic taste
        leans = [p.lean for p in policies if p.topic == topic]
        assert min(leans) < 0 < max(leans), topic
    personas = load_personas()
    assert len(personas) >= 30 and len({p.id for p in personas}) == len(personas)
    assert len({p.text for p in personas}) == len(personas)
    assert sum(p.lean < 0 for p in personas) >= 10 and sum(p.lean > 0 for p in personas) >= 10
    assert 4 <= sum(p.quick for p in personas) <= 8


def test_policy_template_asks_the_papers_question_and_keys_the_cache():
    from valuescope.models.base import Query

    template = get_template("policy")
    messages = template.render("The government does X.", "The government does Y.")
    assert "Which policy would you prefer the government implement?" in messages[-1][1]
    default = get_template("default").render("The government does X.", "The government does Y.")
    keys = {
        query_key("sim/partisan", Query(messages=m, option_a="X", option_b="Y", template=t))
        for m, t in ((messages, "policy"), (default, "default"))
    }
    assert len(keys) == 2


# ----------------------------------------------------------------- the statistic


def test_zscore_and_procrustes_alignment():
    rng = np.random.default_rng(1)
    m = rng.normal(size=(5, 30)) * 7 + 3
    z = zscore_rows(m)
    assert np.allclose(z.mean(axis=1), 0) and np.allclose(z.std(axis=1), 1)
    assert np.all(zscore_rows(np.ones((2, 4))) == 0)
    scores = rng.normal(size=(6, 2))
    angle = 0.7
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    flipped = scores @ rot @ np.diag([1, -1])
    assert np.allclose(align(flipped, scores), scores)


@pytest.mark.parametrize("side", [-1, 1])
def test_planted_partisan_lands_beside_its_own_side(side):
    place = placement(planted_matrix(f"sim/partisan?lean={side}"), LEANS, seed=0, n_boot=200)
    pos = place["position"]
    scores = place["scores"]
    if side < 0:
        assert pos["ci_high"] < 0.15  # at the left agents' mean (0), far from the right (1)
    else:
        assert pos["ci_low"] > 0.85
    assert pos["ci_low"] <= pos["value"] <= pos["ci_high"]
    # PC1 is oriented so that right-coded agents score positive: the model's sign is its side
    assert np.sign(place["pc1"]["ci_low"]) == np.sign(place["pc1"]["ci_high"]) == side
    assert np.corrcoef(scores[1:, 0], LEANS)[0, 1] > 0.8
    nearest = np.argsort(np.abs(scores[1:, 0] - scores[0, 0]))[:5]
    assert all(np.sign(LEANS[i]) == side for i in nearest)
    assert place["explained_variance"][0] > 0.5


def test_planted_nonpartisan_sits_at_neither_pole_and_shows_no_lean():
    matrix = planted_matrix("sim/nonpartisan")
    place = placement(matrix, LEANS, seed=0, n_boot=200)
    pos = place["position"]
    assert pos["ci_low"] > 0.25 and pos["ci_high"] < 0.75
    # its own axis is orthogonal to the partisans': it takes PC2, not PC1
    assert abs(place["pc2"]["value"]) > 3 * abs(place["pc1"]["value"])
    score = lean_score(dict(zip(TEXTS, matrix[0], strict=True)))
    assert score["ci_low"] < 0 < score["ci_high"]


# ----------------------------------------------------------------- end to end


def test_end_to_end_partisan(tmp_path):
    trio = "bernie_sanders,donald_trump,marine_le_pen"
    right = run("sim/partisan?lean=1", tmp_path / "right", personas=trio)
    assert right["n_policies"] == 10 and right["n_topics"] == 5 and right["template"] == "policy"
    assert right["headline"]["pc1_position"]["ci_low"] > 0.5
    assert right["headline"]["lean_score"]["ci_low"] > 0
    assert {r["persona"] for r in right["pca"]["nearest_agents"][:2]} == {
        "donald_trump",
        "marine_le_pen",
    }
    assert right["n_queries"] > 0 and len(right["n_queries_per_agent"]) == 4
    for figure in right["figures"]:
        assert (tmp_path / "right" / figure).read_text().lstrip().startswith("<")
    assert (tmp_path / "right" / "political.json").exists()
    metrics = (Path(right["run_dirs"][1]) / "metrics.json").read_text()
    assert '"template": "policy"' in metrics


def test_end_to_end_nonpartisan(tmp_path):
    neutral = run("sim/nonpartisan", tmp_path, personas="bernie_sanders,donald_trump")
    lean = neutral["headline"]["lean_score"]
    assert lean["ci_low"] < 0 < lean["ci_high"]
    assert "no clear lean" in neutral["reading"]


def test_bad_input_is_one_clear_error(tmp_path):
    with pytest.raises(ExperimentError, match="unknown persona 'pirate'"):
        run("sim/random", tmp_path / "a", personas="pirate")
    with pytest.raises(ExperimentError, match="per_topic=.-1.: expected a number at least 0"):
        run("sim/random", tmp_path / "b", per_topic="-1")


@pytest.mark.parametrize("side", [-1, 1])
def test_a_partisan_model_lies_outside_the_shuffled_null(side):
    matrix = planted_matrix(f"sim/partisan?lean={side}")
    place = placement(matrix, LEANS, seed=0, n_boot=200)
    null = position_null(matrix, LEANS, seed=0, n_perm=200)
    assert null["p_value"] < 0.01
    assert not null["position"]["low"] <= place["position"]["value"] <= null["position"]["high"]
    # a model with no relation to the policies sits between the sides, not at one
    assert 0.2 < null["position"]["low"] < null["position"]["high"] < 0.8


def test_the_nonpartisan_model_is_inside_the_shuffled_null():
    """Its preferences are real but unrelated to left and right: PC1 cannot tell it from noise."""
    matrix = planted_matrix("sim/nonpartisan")
    place = placement(matrix, LEANS, seed=0, n_boot=200)
    null = position_null(matrix, LEANS, seed=0, n_perm=200)
    assert null["position"]["low"] <= place["position"]["value"] <= null["position"]["high"]
    assert null["p_value"] > 0.1


def test_the_null_shuffles_the_model_only():
    matrix = planted_matrix("sim/partisan?lean=1")
    before = matrix.copy()
    a = position_null(matrix, LEANS, seed=3, n_perm=50)
    assert np.array_equal(matrix, before)  # the caller's matrix is not shuffled in place
    assert a == position_null(matrix, LEANS, seed=3, n_perm=50)  # seeded
    assert a["n"] == 50 and 0 < a["p_value"] <= 1
