"""The soft-label fine-tuning loop on `transformers.Trainer`.

`train.py` prepares the prompts, the model (LoRA via peft, or every weight) and the
settings; this module runs the optimisation: a `Trainer` subclass whose `compute_loss`
is the soft-label cross-entropy of `train.soft_loss`, fed in the seeded order the
earlier hand-written loop used (`np.random.default_rng([seed, epoch]).permutation`, one
permutation per epoch), with Trainer's checkpoints (`checkpoint-N/`: weights, optimizer,
scheduler, RNG states, trainer state) and `resume_from_checkpoint`. Each checkpoint also
holds `log.json`, the per-step loss, KL and answer mass so far, written last: a folder
without it is an interrupted save and is never resumed.

Imported only once torch and transformers are known to be installed (`train.train`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
import transformers
from torch.utils.data import Dataset, Sampler

from valuescope.control.errors import ControlError
from valuescope.control.soft_loss import answer_logprobs, left_pad, soft_loss

LOG_FILE = "log.json"


class Prompts(Dataset):
    """The training examples as a map-style dataset (one `Example` per index)."""

    def __init__(self, examples: list) -> None:
        self.examples = examples

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int):
        return self.examples[i]


class SeededOrder(Sampler[int]):
    """One seeded permutation of the examples per epoch (`set_epoch` is called by Trainer)."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.n)
        return iter(order.tolist())


class LeftPadCollator:
    """A batch of examples as left-padded ids, mask, positions and the targets q."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, examples: list) -> dict[str, Any]:
        ids, mask, pos = left_pad(torch, [e.ids for e in examples], self.pad_id, "cpu")
        q = torch.tensor([e.q for e in examples])
        return {"input_ids": ids, "attention_mask": mask, "position_ids": pos, "q": q}


class SoftLabelTrainer(transformers.Trainer):
    """Trainer whose loss is the soft-label cross-entropy over the two answer tokens."""

    loss_is_scaled_for_ga = False  # a per-batch mean: Trainer divides by accumulation steps

    def __init__(self, *args, answer_ids, steps_per_epoch: int, seed: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.answer_ids = answer_ids
        self.steps_per_epoch = steps_per_epoch
        self.order = SeededOrder(len(self.train_dataset), seed)
        self.step_log: list[dict[str, Any]] = []

    def _get_train_sampler(self, train_dataset=None) -> Sampler:
        return self.order

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        log_a, log_b = answer_logprobs(
            torch,
            model,
            inputs["input_ids"],
            inputs["attention_mask"],
            inputs["position_ids"],
            self.answer_ids,
        )
        loss, kl, mass = soft_loss(torch, log_a, log_b, inputs["q"])
        if model.training:
            step = self.state.global_step
            self.step_log.append(
                {
                    "step": step + 1,
                    "epoch": step // self.steps_per_epoch,
                    "loss": float(loss.detach().mean()),
                    "kl": float(kl.detach().mean()),
                    "mass": float(mass.detach().mean()),
                }
            )
        mean = loss.mean()
        return (mean, None) if return_outputs else mean

    def floating_point_ops(self, inputs) -> int:
        return 0  # FLOPs are not reported; Trainer's count walks every parameter each step

    def _save_checkpoint(self, model, trial) -> None:
        super()._save_checkpoint(model, trial)
        folder = Path(self._get_output_dir(trial)) / f"checkpoint-{self.state.global_step}"
        (folder / LOG_FILE).write_text(json.dumps(self.step_log))


class _Advance(transformers.TrainerCallback):
    """Moves the caller's progress bar one step per optimizer step."""

    def __init__(self, progress) -> None:
        self.progress = progress

    def on_step_end(self, args, state, control, **kwargs):
        self.progress.advance(1)


def training_arguments(config, checkpoints: Path, total: int, device: str):
    """Trainer settings equal to the hand-written loop's: AdamW, constant lr, no clipping."""
    return transformers.TrainingArguments(
        output_dir=str(checkpoints),
        per_device_train_batch_size=config.batch_size,
        max_steps=total,
        learning_rate=config.lr,
        lr_scheduler_type="constant",
        warmup_steps=0,
        weight_decay=0.0,
        optim="adamw_torch",
        max_grad_norm=0.0,
        save_strategy="steps",
        save_steps=config.save_every,
        save_total_limit=2,
        logging_strategy="no",
        report_to="none",
        disable_tqdm=True,
        remove_unused_columns=False,
        dataloader_pin_memory=False,
        use_cpu=device == "cpu",
        seed=config.seed,
    )


def checkpoint_step(path: Path) -> int:
    """N of a `checkpoint-N` folder."""
    return int(path.name.split("-")[1])


def complete_checkpoints(root: Path) -> list[Path]:
    """`checkpoint-N` folders whose save finished (log.json written), by step."""
    if not root.is_dir():
        return []
    found = [
        p
        for p in root.iterdir()
        if re.fullmatch(r"checkpoint-\d+", p.name) and (p / LOG_FILE).is_file()
    ]
    return sorted(found, key=checkpoint_step)


def unmark_dequantised_gguf(model) -> None:
    """Let Trainer train a GGUF model that transformers loaded as plain float tensors.

    For an architecture it cannot keep in packed GGUF blocks (Llama, e.g. SmolLM2, in
    transformers 5), transformers dequantises every weight at load but leaves its GGUF
    quantizer on the model, and Trainer refuses any model with a quantizer that is not
    trainable. When no module stayed packed, the quantizer describes nothing the model
    still holds: remove it, as transformers does itself for a load with `dequantize=True`.
    Packed modules keep it, and Trainer's refusal stands (a one-line ControlError).
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    quantizer = getattr(base, "hf_quantizer", None)
    if quantizer is None or quantizer.quantization_config.quant_method != "gguf":
        return
    if not getattr(quantizer, "packed_modules", None):
        quantizer.remove_quantization_config(base)  # what a load with dequantize=True does


def run_trainer(
    model,
    examples: list,
    backend,
    config,
    out: Path,
    total: int,
    steps_per_epoch: int,
    device: str,
    resume: Path | None,
    progress=None,
) -> list[dict[str, Any]]:
    """Train `model` in place for `total` steps (from `resume` if given); the step log."""
    args = training_arguments(config, out / "checkpoints", total, device)
    unmark_dequantised_gguf(model)
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # Trainer's notes on labels and devices
    try:
        try:
            trainer = SoftLabelTrainer(
                model=model,
                args=args,
                train_dataset=Prompts(examples),
                data_collator=LeftPadCollator(backend.pad_id),
                answer_ids=backend.answer_ids,
                steps_per_epoch=steps_per_epoch,
                seed=config.seed,
            )
        except ValueError as exc:  # e.g. weights kept quantised, which Trainer cannot train
            reason = " ".join(str(exc).split())[:300]
            raise ControlError(f"cannot train {config.model}: {reason}") from None
        trainer.remove_callback(transformers.trainer_callback.PrinterCallback)
        if progress is not None:
            trainer.add_callback(_Advance(progress))
        if resume is not None:
            trainer.step_log = json.loads((resume / LOG_FILE).read_text())
        trainer.train(resume_from_checkpoint=None if resume is None else str(resume))
    finally:
        transformers.logging.set_verbosity(verbosity)
    return trainer.step_log
