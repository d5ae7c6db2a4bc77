"""Utility control without the training extras: census sampling, the simulated assembly,
the pair design and the refusal of untrainable models.

Fine-tuning a tiny Llama toward the assembly is in test_control_training.py (hf and
control extras).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy.special import ndtr

from valuescope.control import AssembleConfig, ControlError, assemble, marginals, sample_citizens
from valuescope.control.deliberation import design_pairs, run_assembly
from valuescope.elicit import ResponseCache
from valuescope.models import get_backend

OUTCOMES = [
    "A city park is planted with a hundred new trees.",
    "A child learns to read a year earlier.",
    "A bridge in a small town collapses.",
    "A family loses its savings in a fraud.",
    "A hospital opens a new cancer ward.",
    "A river is cleaned of industrial waste.",
    "A factory closes and two hundred people lose their jobs.",
    "A museum doubles its free opening hours.",
    "Wildfire smoke covers a region for a week.",
    "A scientist finds a cheaper vaccine.",
]


@pytest.fixture(scope="module")
def outcome_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("control") / "outcomes.yaml"
    path.write_text(yaml.safe_dump({"outcomes": OUTCOMES}))
    return path


# ------------------------------------------------------------------ citizens


def test_sampled_citizens_follow_the_census_marginals():
    citizens = sample_citizens(4000, seed=1)
    for attr, shares in marginals().items():
        if attr == "age":
            continue
        counts = Counter(getattr(c, attr) for c in citizens)
        for level, share in shares.items():
            assert abs(counts[level] / len(citizens) - share) < 0.03, (attr, level)
    ages = np.array([c.age for c in citizens])
    assert ages.min() >= 18 and abs((ages >= 65).mean() - marginals()["age"]["65+"]) < 0.03
    again = sample_citizens(50, seed=1)
    assert [c.persona for c in again] == [c.persona for c in citizens[:50]]
    assert [c.persona for c in sample_citizens(50, seed=2)] != [c.persona for c in again]


def test_persona_text_states_every_attribute():
    c = sample_citizens(1, seed=3)[0]
    assert f"{c.age}-year-old" in c.persona and "United States" in c.persona
    assert ("Democrat" in c.persona) or ("Republican" in c.persona) or ("independent" in c.persona)


def test_empty_assemblies_are_clear_errors(tmp_path):
    with pytest.raises(ControlError, match="at least 1"):
        sample_citizens(0)
    backend = get_backend("sim/citizen")
    with ResponseCache(tmp_path / "c.sqlite") as cache:
        with pytest.raises(ControlError, match="0 citizens"):
            run_assembly(backend, [], OUTCOMES, np.array([[0, 1]]), cache)
        with pytest.raises(ControlError, match="0 pairs"):
            run_assembly(backend, ["p"], OUTCOMES, np.zeros((0, 2), int), cache)
    with pytest.raises(ControlError, match="--pairs"):
        design_pairs(["x"] * 5, 0)
    with pytest.raises(ControlError, match="not a topic"):
        design_pairs(["x"] * 5, 4, heldout_topic="y")


def test_cli_reports_an_empty_assembly(cli, tmp_path, outcome_file):
    proc = cli("control", "assemble", "--outcomes", str(outcome_file), "--citizens", "0",
               "--out", str(tmp_path / "a"))  # fmt: skip
    assert proc.returncode == 1
    assert (
        "error:" in proc.stderr
        and "--citizens 0: Input should be greater than or equal to 1" in proc.stderr
    )


# ------------------------------------------------------------------ synthetic citizens


def test_sim_citizen_utilities_follow_the_persona_party():
    from valuescope.experiments.political import load_policies

    agent = get_backend("sim/citizen?idio=0")
    policies = [p for p in load_policies() if p.lean != 0]
    base = "You are a member of a citizens' assembly ... and who is "
    dem = base + "a Democrat."
    rep = base + "a Republican."
    right = [p.text for p in policies if p.lean > 0]
    left = [p.text for p in policies if p.lean < 0]

    def gap(persona):
        return np.mean([agent.utility(persona, t) for t in right]) - np.mean(
            [agent.utility(persona, t) for t in left]
        )

    assert gap(rep) > 1.0 and gap(dem) < -1.0


def test_first_round_shares_equal_the_planted_utilities(tmp_path):
    citizens = sample_citizens(7, seed=0)
    personas = [c.persona for c in citizens]
    pairs = design_pairs(["u"] * len(OUTCOMES), 12, seed=0).pairs
    agent = get_backend("sim/citizen?conformity=0")
    with ResponseCache(tmp_path / "c.sqlite") as cache:
        votes = run_assembly(agent, personas, OUTCOMES, pairs, cache, rounds=1)
    truth = agent.citizen_truth(personas, OUTCOMES).pivot(index="citizen", columns="id")["mean"]
    u = truth.to_numpy()
    p = ndtr((u[:, pairs[:, 0]] - u[:, pairs[:, 1]]) / np.sqrt(2))
    np.testing.assert_allclose(votes.prefs[0], p, atol=1e-9)
    expected = np.where(p > 0.5, 1.0, 0.0).mean(axis=0)
    np.testing.assert_allclose(votes.final, expected)


def test_deliberation_moves_votes_toward_the_majority_and_resumes(tmp_path, outcome_file):
    def run(conformity: float, out: Path) -> dict:
        config = AssembleConfig(
            model=f"sim/citizen?conformity={conformity}&noise=2",
            out=out,
            outcomes=str(outcome_file),
            citizens=15,
            pairs=30,
            rounds=3,
            heldout_topic="none",
            deliberation="votes",  # vote shares only: conformity alone moves the votes
        )
        return assemble(config)

    still = run(0.0, tmp_path / "still")
    assert all(d["changed"]["value"] == 0 for d in still["deliberation"])
    moved = run(2.0, tmp_path / "moved")
    first = moved["deliberation"][0]
    assert first["changed"]["value"] > 0.02
    assert first["toward_majority"]["ci_low"] > 0
    assert moved["rounds"][-1]["mean_majority"] > moved["rounds"][0]["mean_majority"]
    labels = (tmp_path / "moved" / "labels.csv").read_text().splitlines()
    assert labels[0].split(",")[-3:] == ["share_round0", "share_round1", "share_round2"]
    again = run(2.0, tmp_path / "moved")  # every answer comes from the cache
    assert again["n_queries_new"] == 0 and again["rounds"] == moved["rounds"]


# ------------------------------------------------------------------ training


def test_untrainable_models_are_refused():
    from valuescope.control.train import check_trainable

    for model, why in [
        ("sim/citizen", "synthetic agent"),
        ("embedded/smollm2-135m", "llama.cpp"),
        ("llamacpp//tmp/x.gguf", "llama.cpp"),
        ("openai/gpt-4o", "API"),
        ("anthropic/claude", "API"),
    ]:
        with pytest.raises(ControlError, match=why):
            check_trainable(model)
    assert check_trainable("hf/some/dir?threads=1") == ("some/dir", {"threads": "1"})
