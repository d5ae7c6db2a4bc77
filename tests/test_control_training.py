"""Utility control with a real model: LoRA and full fine-tuning of a tiny Llama (hf backend).

Needs the hf and control extras (torch, transformers, peft); the rest of control is
tested in test_control.py without them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import skip_module_without
from test_control import OUTCOMES

from valuescope.control import AssembleConfig, ControlError, assemble
from valuescope.elicit import ResponseCache

# a missing extra skips this module (CI fails on that skip); a broken one is an error
skip_module_without("torch", reason="the hf extra is not installed")
skip_module_without("peft", reason="the control extra is not installed")


@pytest.fixture(scope="module")
def outcome_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("control") / "outcomes.yaml"
    path.write_text(yaml.safe_dump({"outcomes": OUTCOMES}))
    return path


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


@pytest.mark.slow  # a training stopped and resumed (5 s); a full training below is fast
def test_training_resumes_from_its_last_checkpoint(tiny, synthetic_assembly, tmp_path):
    import torch
    from safetensors.torch import load_file

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

    run(tmp_path / "a", 11)
    run(tmp_path / "b", 4)
    resumed = run(tmp_path / "b", 11)  # past the end of the first epoch (8 steps)
    kept = sorted(p.name for p in (tmp_path / "b" / "checkpoints").glob("checkpoint-*"))
    assert kept == ["checkpoint-11", "checkpoint-9"]  # the latest two
    assert resumed["resumed_from_step"] == 4 and resumed["steps"] == 11
    assert resumed["steps_per_epoch"] == 8
    assert 20 < resumed["memory"]["seq_len"] < 512  # the longest real prompt, not the cap
    for path in ("checkpoints/checkpoint-11/adapter_model.safetensors",
                 "adapter/adapter_model.safetensors"):  # fmt: skip
        a, b = load_file(tmp_path / "a" / path), load_file(tmp_path / "b" / path)
        assert a.keys() == b.keys() and len(a) > 0
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    log_a = (tmp_path / "a" / "train_log.csv").read_text()
    assert log_a == (tmp_path / "b" / "train_log.csv").read_text()

    class Killed(Exception):
        pass

    class KillAtStep7:  # a run killed after step 7, its last checkpoint at step 6
        done = 0

        def start(self, total, description):
            pass

        def advance(self, n):
            self.done += n
            if self.done >= 7:
                raise Killed

    config = TrainConfig(model=f"hf/{tiny}", assembly=synthetic_assembly, out=tmp_path / "c",
                         epochs=2, max_steps=11, lr=1e-2, save_every=3, threads=1)  # fmt: skip
    with pytest.raises(Killed):
        train(config, progress=KillAtStep7())
    (tmp_path / "c" / "checkpoints" / "checkpoint-7").mkdir()  # a save cut short: no log.json
    assert train(config)["resumed_from_step"] == 6
    a, c = (load_file(tmp_path / x / "adapter/adapter_model.safetensors") for x in "ac")
    for k in a:
        torch.testing.assert_close(a[k], c[k], rtol=0, atol=0)
    assert log_a == (tmp_path / "c" / "train_log.csv").read_text()
    with pytest.raises(ControlError, match="different settings"):
        train(TrainConfig(model=f"hf/{tiny}", assembly=synthetic_assembly, out=tmp_path / "b"))
    (tmp_path / "d" / "checkpoints" / "step-000004").mkdir(parents=True)  # the old loop's
    with pytest.raises(ControlError, match=r"earlier valuescope version \(step-\*\)"):
        train(TrainConfig(model=f"hf/{tiny}", assembly=synthetic_assembly, out=tmp_path / "d"))


@pytest.mark.slow
def test_fine_tuning_moves_a_tiny_model_to_the_assembly(tiny, synthetic_assembly, tmp_path):
    """Full fine-tuning: on this random 2-layer model LoRA often settles near the mean share
    (docs/control.md, "Tests"); LoRA is covered by the resume and CLI tests and the demo."""
    from valuescope.control.finetune_evaluation import EvaluateConfig, evaluate_control
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


@pytest.mark.slow
def test_a_gguf_model_loaded_through_transformers_trains(synthetic_assembly, tmp_path):
    """The CPU demo's path: the embedded SmolLM2 GGUF, dequantised by transformers, which
    keeps a GGUF quantizer on the model that Trainer would refuse (soft_label_trainer)."""
    from safetensors.torch import load_file

    from valuescope.control.train import TrainConfig, train
    from valuescope.models.embedded import MODELS

    files = MODELS["smollm2-135m"].package_files()
    if not files:
        pytest.skip("the embedded SmolLM2 model is not installed (valuescope models install)")
    summary = train(TrainConfig(model=f"hf/{files[0]}", assembly=synthetic_assembly,
                                out=tmp_path, max_steps=1, batch_size=2, lora_layers=1,
                                threads=2))  # fmt: skip
    assert summary["steps"] == 1 and summary["method"] == "lora"
    assert 0 < summary["first_loss"] < 50
    weights = load_file(tmp_path / "adapter" / "adapter_model.safetensors")
    assert weights and all(".layers.29." in k for k in weights)  # the last of 30 layers
    assert any(float(v.abs().max()) > 0 for k, v in weights.items() if "lora_B" in k)
