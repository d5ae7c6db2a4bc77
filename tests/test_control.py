"""Utility control: census sampling, the simulated assembly, LoRA training, evaluation.

The end-to-end test fine-tunes a tiny randomly initialised Llama (hf backend) toward a
synthetic assembly whose members are `sim/citizen` agents with known utilities.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy.special import ndtr

from valuescope.control import AssembleConfig, ControlError, assemble, marginals, sample_citizens
from valuescope.control.assembly import design_pairs, run_assembly
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
    assert "error:" in proc.stderr and "--citizens must be at least 1" in proc.stderr


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


torch = pytest.importorskip("torch", reason="the hf extra is not installed")
pytest.importorskip("peft", reason="the control extra is not installed")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    from valuescope.elicit.prompts import TEMPLATES
    from valuescope.models.hf import save_tiny_model

    corpus = [*OUTCOMES, TEMPLATES["default"].user, TEMPLATES["default"].system]
    return save_tiny_model(tmp_path_factory.mktemp("hf") / "tiny", corpus)


@pytest.fixture(scope="module")
def synthetic_assembly(tmp_path_factory, outcome_file) -> Path:
    out = tmp_path_factory.mktemp("assembly")
    assemble(
        AssembleConfig(
            model="sim/citizen?polarization=0.3",
            out=out,
            outcomes=str(outcome_file),
            citizens=9,
            pairs=45,
            rounds=2,
            heldout_fraction=0.3,
            heldout_topic="none",
        )
    )
    return out


def test_memory_check_refuses_with_the_figures(tiny, synthetic_assembly, tmp_path):
    from valuescope.control.train import TrainConfig, train

    config = TrainConfig(
        model=f"hf/{tiny}",
        assembly=synthetic_assembly,
        out=tmp_path / "t",
        full=True,
        memory_limit_gb=0.0001,
    )
    with pytest.raises(ControlError, match=r"needs about .* GB .* only 0\.00 GB"):
        train(config)
    assert not (tmp_path / "t" / "checkpoints").exists()


def test_training_resumes_from_its_last_checkpoint(tiny, synthetic_assembly, tmp_path):
    from valuescope.control.train import TrainConfig, train

    def run(out: Path, max_steps: int):
        config = TrainConfig(
            model=f"hf/{tiny}",
            assembly=synthetic_assembly,
            out=out,
            epochs=2,
            max_steps=max_steps,
            lr=1e-2,
            save_every=3,
            threads=1,
        )
        return train(config)

    run(tmp_path / "a", 7)
    run(tmp_path / "b", 4)
    resumed = run(tmp_path / "b", 7)
    assert resumed["resumed_from_step"] == 4 and resumed["steps"] == 7
    assert 20 < resumed["memory"]["seq_len"] < 512  # the longest real prompt, not the cap
    a = torch.load(tmp_path / "a" / "checkpoints" / "step-000007" / "trainable.pt")
    b = torch.load(tmp_path / "b" / "checkpoints" / "step-000007" / "trainable.pt")
    assert a.keys() == b.keys() and len(a) > 0
    for k in a:
        torch.testing.assert_close(a[k], b[k])
    log_a = (tmp_path / "a" / "train_log.csv").read_text()
    assert log_a == (tmp_path / "b" / "train_log.csv").read_text()
    with pytest.raises(ControlError, match="different settings"):
        train(TrainConfig(model=f"hf/{tiny}", assembly=synthetic_assembly, out=tmp_path / "b"))


@pytest.mark.slow
def test_fine_tuning_moves_a_tiny_model_to_the_assembly(tiny, synthetic_assembly, tmp_path):
    """Full fine-tuning: on this random 2-layer model LoRA often settles near the mean share
    (docs/control.md, "Tests"); LoRA is covered by the resume and CLI tests and the demo."""
    from valuescope.control.evaluate import EvaluateConfig, evaluate_control
    from valuescope.control.train import TrainConfig, train

    summary = train(
        TrainConfig(
            model=f"hf/{tiny}",
            assembly=synthetic_assembly,
            out=tmp_path / "t",
            epochs=15,
            lr=3e-3,
            full=True,
            save_every=1000,
            threads=1,
        )
    )
    assert summary["method"] == "full" and (tmp_path / "t" / "model" / "config.json").is_file()
    result = evaluate_control(EvaluateConfig(trained=tmp_path / "t", threads=1, bootstrap=200))
    train_fig, held = result["agreement"]["train"], result["agreement"]["heldout"]
    assert train_fig["kl_after"]["value"] <= 0.5 * train_fig["kl_before"]["value"]
    assert train_fig["kl_change_after"]["ci_high"] < 0
    assert held["accuracy_after"]["value"] > held["accuracy_before"]["value"]
    assert train_fig["mass_after"]["value"] > 0.5 > train_fig["mass_before"]["value"]
    saved = json.loads((tmp_path / "t" / "evaluation" / "evaluation.json").read_text())
    assert saved["agreement"]["train"]["n_pairs"] == train_fig["n_pairs"] > 0
    assert result["capability"]["perplexity_before"] > 1


@pytest.mark.slow
def test_cli_assemble_train_evaluate(cli, tiny, outcome_file, tmp_path):
    asm, tr = tmp_path / "asm", tmp_path / "tr"
    cli("control", "assemble", "sim/citizen", "--outcomes", str(outcome_file), "--citizens", "5",
        "--pairs", "12", "--out", str(asm), "-q", check=True)  # fmt: skip
    proc = cli("control", "train", f"hf/{tiny}", "--assembly", str(asm), "--out", str(tr),
               "--max-steps", "2", "--threads", "1", "--json", check=True)  # fmt: skip
    assert json.loads(proc.stdout)["steps"] == 2
    proc = cli("control", "evaluate", str(tr), "--bootstrap", "20", "--threads", "1",
               check=True)  # fmt: skip
    assert "agreement with the assembly" in proc.stdout and "perplexity" in proc.stdout
    bad = cli("control", "train", "embedded/smollm2-135m", "--assembly", str(asm))
    assert bad.returncode == 1 and "cannot be trained" in bad.stderr


def test_a_language_model_citizen_argues_in_deliberation(tiny, outcome_file, tmp_path):
    out = tmp_path / "asm"
    config = AssembleConfig(
        model=f"hf/{tiny}?threads=1",
        out=out,
        outcomes=str(outcome_file),
        citizens=3,
        pairs=3,
        rounds=2,
        heldout_topic="none",
        arguments=2,
        mode="logprob",
    )
    summary = assemble(config)
    shown = json.loads((out / "arguments.json").read_text())
    assert len(shown) == 1 and len(shown[0]) == summary["n_pairs"]["train"] + 1
    assert all(len(args) <= 2 and all(a.strip() for a in args) for args in shown[0])
    assert sum(len(args) for args in shown[0]) >= 3
    with ResponseCache(out / "responses.sqlite") as cache:  # votes and arguments are kept
        assert cache.count() >= 2 * 3 * 3 * 2 + sum(len(a) for a in shown[0])
    again = assemble(config)
    assert again["n_queries_new"] == 0
    assert json.loads((out / "arguments.json").read_text()) == shown
    with pytest.raises(ControlError, match="--heldout-fraction"):
        assemble(AssembleConfig(out=out, outcomes=str(outcome_file), heldout_fraction=1.5))


def test_a_fully_trained_model_keeps_the_base_answer_settings(tiny, synthetic_assembly, tmp_path):
    from valuescope.control.train import TrainConfig, load_trained, train

    model = f"hf/{tiny}?prefill=I%20pick%20Option"
    train(TrainConfig(model=model, assembly=synthetic_assembly, out=tmp_path, max_steps=1,
                      full=True, threads=1))  # fmt: skip
    backend, info = load_trained(tmp_path)
    assert info["method"] == "full" and backend.prefill == "I pick Option"
    assert backend.name != model and backend.name.startswith(f"hf/{tmp_path / 'model'}")
