"""`control train` on transformers.Trainer against the hand-written torch loop it replaced.

Both train the same LoRA model (same seeded init) on the same prompts, in the same seeded
order, with the same loss (`control.soft_loss`) and AdamW settings; both write checkpoints
every `--save-every` steps and the final adapter. The hand-written loop is kept here, as
it was in `control/train.py` before the move, as the reference.

(a) Resume: N steps straight; stopped at step k (`max_steps=k`) then resumed to N; and
    (tiny model) crashed at step m (an exception from the progress callback; k < m < N,
    the last checkpoint is k) then resumed to N. Max abs difference of every adapter weight
    against the straight run, per implementation, and between the two implementations.
(b) Speed: steps/s from the start of training (Trainer set-up included) to the last
    step, and steady steps/s (first to last step, set-up excluded), R repeats
    interleaved (hand, Trainer, hand, Trainer, ...), with the one-minute load average
    before each run; the ratios are the medians of Trainer/hand over the pairs.

Models: the random 2-layer Llama of the tests (`save_tiny_model`; a step takes a few ms,
so this measures the loop's own overhead) and SmolLM2-135M-Instruct, the embedded GGUF
loaded through transformers (`hf/<file.gguf>`, dequantised to float32; LoRA on the last
6 layers as in docs/control.md's demo). Prints markdown tables and a JSON line.

    nice -n 15 python benchmarks/train_loop.py              # ~25 min on 2 busy cores (GGUF loads)
    nice -n 15 python benchmarks/train_loop.py --no-smol    # tiny model only (~3 min)
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from valuescope.control import AssembleConfig, assemble
from valuescope.control.assembly_run import load_assembly
from valuescope.control.soft_loss import batch_logprobs, soft_loss
from valuescope.control.train import (
    TrainConfig,
    _log_frame,
    _save_final,
    _Threads,
    build_examples,
    check_trainable,
    load_backend,
    precheck_memory,
    resolve_device,
    train,
    wrap_lora,
)
from valuescope.elicit.prompts import TEMPLATES
from valuescope.models.embedded import MODELS
from valuescope.models.hf import save_tiny_model
from valuescope.runcore.rundir import prepare_out_dir, write_csv, write_json


def replace(config: TrainConfig, **changes) -> TrainConfig:
    """A copy of `config` with `changes` (a dataclass or a pydantic settings model)."""
    if dataclasses.is_dataclass(config):
        return dataclasses.replace(config, **changes)
    return config.model_copy(update=changes)


class Crash(Exception):
    """Raised by the progress callback to stop a run as a kill would."""


class Timer:
    """Progress sink: time from `start` to the last step; optionally crash at a step."""

    def __init__(self, crash_at: int | None = None) -> None:
        self.crash_at, self.done, self.steps = crash_at, 0, []
        self.t0 = 0.0

    def start(self, total: int, description: str) -> None:
        self.t0 = time.perf_counter()

    def advance(self, n: int) -> None:
        self.done += n
        if n:
            self.steps.append(time.perf_counter())
        if self.crash_at is not None and self.done >= self.crash_at:
            raise Crash


# ------------------------------------------------------------------ the reference loop


def hand_train(config: TrainConfig, progress=None) -> dict:
    """The hand-written loop of control/train.py before the move (checkpoints step-N/)."""
    t0 = time.perf_counter()
    _, labels = load_assembly(config.assembly)
    device = resolve_device(torch, config.device)
    name, params = check_trainable(config.model)
    precheck_memory(config, name, params, device, labels)  # as train() does
    out = prepare_out_dir(Path(config.out))
    found = sorted((out / "checkpoints").glob("step-*")) if (out / "checkpoints").is_dir() else []
    backend = load_backend(config.model, config.threads)
    examples = build_examples(backend, labels, config.template)
    import peft

    model = wrap_lora(peft, torch, backend.model, config).to(device)
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=0.0)
    steps_per_epoch = math.ceil(len(examples) / config.batch_size)
    total = steps_per_epoch * config.epochs
    if config.max_steps is not None:
        total = min(total, config.max_steps)
    step, log = 0, []
    if found:
        step, log = _load_checkpoint(model, optim, found[-1])
    if progress is not None:
        progress.start(total, "")
        progress.advance(step)
    with _Threads(torch, config.threads):
        while step < total:
            epoch, k = divmod(step, steps_per_epoch)
            order = np.random.default_rng([config.seed, epoch]).permutation(len(examples))
            chosen = [
                examples[i] for i in order[k * config.batch_size : (k + 1) * config.batch_size]
            ]
            log_a, log_b = batch_logprobs(
                torch, model, [e.ids for e in chosen], backend.pad_id, backend.answer_ids, device
            )
            q = torch.tensor([e.q for e in chosen], device=device)
            loss, kl, mass = soft_loss(torch, log_a, log_b, q)
            optim.zero_grad(set_to_none=True)
            loss.mean().backward()
            optim.step()
            step += 1
            log.append(
                {
                    "step": step,
                    "epoch": epoch,
                    "loss": float(loss.detach().mean()),
                    "kl": float(kl.detach().mean()),
                    "mass": float(mass.detach().mean()),
                }
            )
            if progress is not None:
                progress.advance(1)
            if step % config.save_every == 0 or step == total:
                _save_checkpoint(model, optim, out, step, log)
    model.eval()
    _save_final(model, backend, out, config)
    write_csv(out / "train_log.csv", _log_frame(log))
    summary = {"steps": step, "seconds": time.perf_counter() - t0}
    write_json(out / "train.json", summary)
    return summary


def _save_checkpoint(model, optim, out: Path, step: int, log: list) -> None:
    import shutil

    root = out / "checkpoints"
    root.mkdir(exist_ok=True)
    tmp, final = root / f".tmp-{step:06d}", root / f"step-{step:06d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    state = {k: v.detach().cpu() for k, v in model.named_parameters() if v.requires_grad}
    torch.save(state, tmp / "trainable.pt")
    torch.save(optim.state_dict(), tmp / "optimizer.pt")
    (tmp / "log.json").write_text(json.dumps(log))
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    for old in sorted(root.glob("step-*"))[:-2]:
        shutil.rmtree(old, ignore_errors=True)


def _load_checkpoint(model, optim, path: Path) -> tuple[int, list]:
    state = torch.load(path / "trainable.pt", map_location="cpu")
    params = dict(model.named_parameters())
    with torch.no_grad():
        for k, v in state.items():
            params[k].copy_(v)
    optim.load_state_dict(torch.load(path / "optimizer.pt", map_location="cpu"))
    return int(path.name.split("-")[1]), json.loads((path / "log.json").read_text())


IMPLS = {"hand": hand_train, "trainer": train}


# ------------------------------------------------------------------ measurements


def adapter(out: Path) -> dict:
    return load_file(out / "adapter" / "adapter_model.safetensors")


def max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys() and a, "adapters hold different weights"
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def resume_check(base: TrainConfig, root: Path, n: int, k: int, m: int | None) -> dict:
    """Max abs adapter difference of stopped/crashed-and-resumed runs vs the straight one."""
    result, straight = {}, {}
    for impl, fn in IMPLS.items():
        cfg = replace(base, save_every=k)
        fn(replace(cfg, out=root / f"{impl}-straight", max_steps=n))
        straight[impl] = adapter(root / f"{impl}-straight")
        fn(replace(cfg, out=root / f"{impl}-stop", max_steps=k))
        fn(replace(cfg, out=root / f"{impl}-stop", max_steps=n))
        logs = [(root / f"{impl}-{w}" / "train_log.csv").read_text() for w in ("straight", "stop")]
        result[impl] = {
            "stop_resume_max_abs": max_diff(straight[impl], adapter(root / f"{impl}-stop")),
            "same_log": logs[0] == logs[1],
        }
        if m is not None:  # crashed at step m, resumed from the checkpoint at k
            crash = replace(cfg, out=root / f"{impl}-crash", max_steps=n)
            with contextlib.suppress(Crash):
                fn(crash, progress=Timer(crash_at=m))
            fn(crash)
            result[impl]["crash_resume_max_abs"] = max_diff(
                straight[impl], adapter(root / f"{impl}-crash")
            )
    result["trainer_vs_hand_max_abs"] = max_diff(straight["hand"], straight["trainer"])
    return result


def speed(base: TrainConfig, root: Path, steps: int, repeats: int) -> list[dict]:
    """Interleaved timed runs from scratch: one row per run."""
    rows = []
    for r in range(repeats):
        for impl, fn in IMPLS.items():
            load = os.getloadavg()[0]
            timer = Timer()
            summary = fn(replace(base, out=root / f"speed-{impl}-{r}", max_steps=steps), timer)
            assert summary["steps"] == steps
            first, last = timer.steps[0], timer.steps[-1]
            rows.append(
                {
                    "impl": impl,
                    "repeat": r,
                    "load": round(load, 2),
                    "loop_s": last - timer.t0,
                    "steps_per_s": steps / (last - timer.t0),
                    "steady_steps_per_s": (steps - 1) / (last - first),
                    "train_s": summary["seconds"],
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    return rows


def ratio(rows: list[dict]) -> dict:
    pairs = [
        t["steps_per_s"] / h["steps_per_s"]
        for h, t in zip(rows[0::2], rows[1::2], strict=True)
        if h["impl"] == "hand" and t["impl"] == "trainer"
    ]
    steady = [
        t["steady_steps_per_s"] / h["steady_steps_per_s"]
        for h, t in zip(rows[0::2], rows[1::2], strict=True)
    ]
    median = {
        impl: statistics.median(x["steps_per_s"] for x in rows if x["impl"] == impl)
        for impl in IMPLS
    }
    return {
        "median_steps_per_s": median,
        "ratio_trainer_to_hand": statistics.median(pairs),
        "ratio_steady": statistics.median(steady),
    }


def print_table(title: str, rows: list[dict]) -> None:
    print(f"\n### {title}\n\n| run | impl | load | steps/s | steady steps/s | loop s | train() s |")
    print("|---|---|---|---|---|---|---|")
    for x in rows:
        print(
            f"| {x['repeat']} | {x['impl']} | {x['load']:.2f} | {x['steps_per_s']:.3f} "
            f"| {x['steady_steps_per_s']:.3f} "
            f"| {x['loop_s']:.2f} | {x['train_s']:.2f} |"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tiny-steps", type=int, default=40)
    ap.add_argument("--smol-steps", type=int, default=6)
    ap.add_argument("--no-smol", action="store_true")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per run")
    args = ap.parse_args()
    summary: dict = {"load_start": os.getloadavg()[0], "torch_threads": args.threads}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        asm = root / "assembly"
        settings = {"citizens": 24, "pairs": 40, "heldout_fraction": 0.25}
        settings |= {"heldout_topic": "none", "deliberation": "votes", "compare": False}
        assemble(AssembleConfig(out=asm, **settings))
        _, labels = load_assembly(asm)
        corpus = sorted({*labels["outcome_a"], *labels["outcome_b"]})
        corpus += [TEMPLATES["default"].user, TEMPLATES["default"].system]
        tiny = save_tiny_model(root / "tiny", corpus)
        models = {"tiny": (f"hf/{tiny}", {}, args.tiny_steps)}
        if not args.no_smol:
            gguf = MODELS["smollm2-135m"].package_files()[0]
            smol = f"hf/{gguf}?prefill=I%20would%20prefer%20Option"
            models["smollm2-135m"] = (smol, {"lora_layers": 6, "batch_size": 4}, args.smol_steps)
        for label, (model, extra, steps) in models.items():
            base = TrainConfig(
                model=model, assembly=asm, epochs=50, lr=5e-3, threads=args.threads, **extra
            )
            n, k, m = (12, 5, 8) if label == "tiny" else (6, 2, None)  # a GGUF load: ~1 min
            check = resume_check(base, root / f"resume-{label}", n, k, m)
            print(f"\n{label}: resume (N={n}, stop/checkpoint k={k}, crash m={m}):", check)
            rows = speed(base, root / f"speed-{label}", steps, args.repeats)
            print_table(f"{label}: {steps} steps per run", rows)
            summary[label] = {"resume": check, "rows": rows, **ratio(rows)}
            print(f"{label}: {json.dumps(ratio(rows))}")
    summary["load_end"] = os.getloadavg()[0]
    short = {k: v if not isinstance(v, dict) else {x: y for x, y in v.items() if x != "rows"}
             for k, v in summary.items()}  # fmt: skip
    print(json.dumps(short))


if __name__ == "__main__":
    main()
