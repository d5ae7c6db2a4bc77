"""`valuescope control train`: fine-tune an hf/ model toward the assembly's vote shares.

Each training pair gives two prompts (both orders, the same forced-choice template the
measurements use). The target is a soft label: P(first label) = the assembly's share for
the first-listed outcome. The loss is the cross-entropy between that target, spread over
the two answer tokens, and the model's next-token distribution over the whole vocabulary:

    loss = -(q log P(A) + (1 - q) log P(B))
         = KL(q || P(A)/(P(A)+P(B))) + H(q) - log(P(A) + P(B))

so it both matches the renormalised answer share (what `valuescope run` reads in logprob
mode) and keeps the probability mass on the answer tokens. TRL's SFTTrainer trains on
target token sequences (hard labels), so the loss is the `compute_loss` of a plain
`transformers.Trainer` subclass (soft_label_trainer.py) over a PEFT LoRA model (`--full`
trains every weight instead). Trainer's checkpoints let an interrupted run resume; the
data order and LoRA initialisation are seeded.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from valuescope.atomic import replace_dir
from valuescope.control.assembly_run import load_assembly
from valuescope.control.errors import ControlError
from valuescope.control.memory import check_memory, estimate
from valuescope.control.settings import TrainConfig
from valuescope.control.soft_loss import batch_logprobs, soft_loss  # noqa: F401 (re-exported)
from valuescope.elicit import get_template
from valuescope.errors import MissingDependencyError
from valuescope.runcore.rundir import prepare_out_dir, write_csv, write_json

PIP_LINE = 'pip install "valuescope[hf,control]"'
API_PROVIDERS = ("openai", "anthropic", "vllm")
GGUF_PROVIDERS = ("embedded", "llamacpp")


def require_training_stack() -> tuple[Any, Any, Any]:
    """torch, transformers, peft, or the pip line."""
    try:
        import peft
        import torch
        import transformers
    except ImportError as exc:
        raise MissingDependencyError(
            f"training needs torch, transformers and peft ({exc.name} is missing): {PIP_LINE}"
        ) from None
    return torch, transformers, peft


def check_trainable(model: str) -> tuple[str, dict[str, str]]:
    """(name, params) of an hf/ model string, or a clear error for models with no weights."""
    from valuescope.models.registry import parse_model_string

    provider, name, params = parse_model_string(model)
    if provider == "hf":
        return name, params
    if provider == "sim":
        why = "is a synthetic agent with no weights to train"
    elif provider in GGUF_PROVIDERS:
        hint = ""
        if provider == "embedded":
            from valuescope.models.embedded import MODELS

            entry = MODELS.get(name)
            files = entry.package_files() if entry else None
            if files and len(files) == 1:
                hint = f" (here: hf/{files[0]})"
        why = (
            "runs quantised GGUF weights through llama.cpp, which cannot be trained; load "
            f"the GGUF through transformers instead, which dequantises it: hf/<file.gguf>{hint}"
        )
    elif provider in API_PROVIDERS:
        why = "is served behind an API: its weights cannot be fine-tuned here"
    else:
        why = "is not a local transformers model"
    raise ControlError(f"cannot train {model}: it {why}; control train needs an hf/ model")


# ---------------------------------------------------------------------------- data


@dataclass
class Example:
    """One training prompt: token ids and the target P(first label)."""

    ids: list[int]
    q: float
    pair: int
    order: int


def build_examples(backend, labels, template: str, split: str | tuple = "train", persona=None):
    """Both orders of every pair in `split`, rendered and tokenised."""
    tmpl = get_template(template)
    splits = (split,) if isinstance(split, str) else split
    rows = labels[labels["split"].isin(splits)]
    out = []
    for _, row in rows.iterrows():
        p = float(row["p_assembly"])
        for order, (x, y, q) in enumerate(
            ((row["outcome_a"], row["outcome_b"], p), (row["outcome_b"], row["outcome_a"], 1 - p))
        ):
            ids = backend.encode(tmpl.render(x, y, persona))
            out.append(Example(ids=ids, q=q, pair=int(row["pair"]), order=order))
    return out


# ---------------------------------------------------------------------------- model


def resolve_device(torch, device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ControlError(f"--device {device}: no CUDA GPU is visible to torch")
    if device != "cpu" and not device.startswith("cuda"):
        raise ControlError(f"--device {device!r}: use auto, cpu or cuda")
    return device


def precheck_memory(config: TrainConfig, name: str, params: dict, device: str, labels=None) -> dict:
    """Estimate training memory before loading the weights, and check it.

    The parameter count comes from the config (a model on the meta device); the prompt
    length is that of the longest training prompt, tokenised with the model's own
    tokenizer and chat template, and must not exceed --max-length.
    """
    from valuescope.models.hf import _parse_params, _resolve

    torch, transformers, _ = require_training_stack()
    opts = _parse_params(name, params)
    source, gguf_file = _resolve(name, opts["gguf_file"])
    kwargs: dict[str, Any] = {"local_files_only": True}
    if gguf_file:
        kwargs["gguf_file"] = gguf_file
    try:
        cfg = transformers.AutoConfig.from_pretrained(source, **kwargs)
    except (OSError, ValueError, KeyError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise ControlError(f"hf/{name}: cannot read the model config: {reason}") from None
    seq_len = config.max_length
    if labels is not None:
        seq_len = _longest_prompt(transformers, source, kwargs, opts["prefill"], labels, config)
    with torch.device("meta"):
        meta = transformers.AutoModelForCausalLM.from_config(cfg)
    n_params = sum(p.numel() for p in meta.parameters())
    n_train = (
        n_params
        if config.full
        else lora_size(torch, meta, config.lora_rank, top_layers(cfg, config))
    )
    est = estimate(
        cfg,
        n_params,
        n_train,
        batch_size=config.batch_size,
        seq_len=seq_len,
        dtype=opts["dtype"],
    )
    return check_memory(est, device, config.memory_limit_gb) | {"seq_len": seq_len}


def _longest_prompt(transformers, source, kwargs, prefill, labels, config: TrainConfig) -> int:
    """Tokens in the longest training prompt (tokenizer only; the weights stay unloaded)."""
    from types import SimpleNamespace

    from valuescope.models.hf import HFBackend

    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # GGUF parsing prints progress bars
            tokenizer = transformers.AutoTokenizer.from_pretrained(source, **kwargs)
    except (OSError, ValueError, KeyError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise ControlError(f"cannot load the tokenizer of {config.model}: {reason}") from None
    finally:
        transformers.logging.set_verbosity(verbosity)
    shim = SimpleNamespace(tokenizer=tokenizer, prefill=prefill)
    encoder = SimpleNamespace(encode=lambda messages: HFBackend.encode(shim, messages))
    longest = max(len(e.ids) for e in build_examples(encoder, labels, config.template))
    if longest > config.max_length:
        raise ControlError(
            f"a training prompt has {longest} tokens, more than --max-length {config.max_length}"
        )
    return longest


def top_layers(model_config, config: TrainConfig) -> list[int] | None:
    """Indices of the last `--lora-layers` transformer layers (None: every layer)."""
    if not config.lora_layers:
        return None
    n = int(getattr(model_config, "num_hidden_layers", 0) or 0)
    if not 1 <= config.lora_layers <= n:
        raise ControlError(f"--lora-layers {config.lora_layers}: the model has {n} layers")
    return list(range(n - config.lora_layers, n))


def lora_size(torch, model, rank: int, layers: list[int] | None = None) -> int:
    """Trainable weights of rank-`rank` LoRA on the linear layers but the output head."""
    total = 0
    for name, mod in model.named_modules():
        if not isinstance(mod, torch.nn.Linear) or name.endswith("lm_head"):
            continue
        index = re.search(r"\.layers\.(\d+)\.", name)
        if layers is not None and (index is None or int(index.group(1)) not in layers):
            continue
        total += rank * (mod.in_features + mod.out_features)
    return total


def load_backend(model: str, config_threads: int | None = None):
    """The HFBackend of an hf/ model string (the tokenizer, template and answer ids)."""
    from valuescope.models import get_backend

    check_trainable(model)
    backend = get_backend(model)
    if config_threads:
        backend.threads = config_threads
    return backend


def wrap_lora(peft, torch, model, config: TrainConfig):
    """The model with LoRA adapters on every linear layer (seeded init), or as is (--full)."""
    if config.full:
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    torch.manual_seed(config.seed)
    lora = peft.LoraConfig(
        r=config.lora_rank,
        lora_alpha=config.lora_alpha,
        lora_dropout=0.0,
        target_modules=_linear_names(torch, model),
        layers_to_transform=top_layers(model.config, config),
        task_type="CAUSAL_LM",
    )
    with _quiet_peft():
        return peft.get_peft_model(model, lora)


@contextlib.contextmanager
def _quiet_peft():
    """Hide transformers' deprecation warning that peft's model wrapping triggers."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
        warnings.filterwarnings("ignore", message="Could not find a config file")
        yield


def _linear_names(torch, model) -> list[str]:
    """Names of the linear layers inside the transformer blocks (all but the output head)."""
    names = {
        name.rsplit(".", 1)[-1]
        for name, mod in model.named_modules()
        if isinstance(mod, torch.nn.Linear) and re.search(r"\.layers\.\d+\.", name)
    }
    if not names:
        raise ControlError("found no linear layers inside transformer blocks to put LoRA on")
    return sorted(names)


# ---------------------------------------------------------------------------- training


def train(config: TrainConfig, progress=None) -> dict[str, Any]:
    """Fine-tune and write out/: adapter/ (or model/), checkpoints/, train_log.csv, train.json."""
    t0 = time.perf_counter()
    name, params = check_trainable(config.model)
    meta, labels = load_assembly(config.assembly)
    n_train_pairs = int((labels["split"] == "train").sum())
    if n_train_pairs == 0:
        raise ControlError(f"{config.assembly}: the assembly has 0 training pairs")
    torch, _, peft = require_training_stack()
    device = resolve_device(torch, config.device)
    if device.startswith("cuda:") and device != "cuda:0":
        raise ControlError(
            f"--device {device}: training runs on the first visible GPU (transformers.Trainer); "
            f"pick it with CUDA_VISIBLE_DEVICES={device.split(':')[1]} and --device cuda"
        )
    memory = precheck_memory(config, name, params, device, labels)
    out = prepare_out_dir(Path(config.out))
    resume = _find_resume(out, config)
    backend = load_backend(config.model, config.threads)
    examples = build_examples(backend, labels, config.template)
    too_long = max(len(e.ids) for e in examples)
    if too_long > config.max_length:
        raise ControlError(
            f"a training prompt has {too_long} tokens, more than --max-length {config.max_length}"
        )
    from valuescope.control.soft_label_trainer import checkpoint_step, run_trainer

    model = wrap_lora(peft, torch, backend.model, config).to(device)
    steps_per_epoch = math.ceil(len(examples) / config.batch_size)
    total = steps_per_epoch * config.epochs
    if config.max_steps is not None:
        total = min(total, config.max_steps)
    write_json(out / "train_config.json", config.fingerprint())
    if progress is not None:
        progress.start(total, f"training {config.model}")
        progress.advance(0 if resume is None else checkpoint_step(resume))
    with _Threads(torch, config.threads):
        log = run_trainer(
            model, examples, backend, config, out, total, steps_per_epoch, device, resume, progress
        )
    step = log[-1]["step"] if log else 0
    model.eval()
    final = _save_final(model, backend, out, config)
    summary = {
        "model": config.model,
        "assembly": str(config.assembly),
        "method": "full" if config.full else "lora",
        "device": device,
        "memory": memory,
        "n_examples": len(examples),
        "n_train_pairs": n_train_pairs,
        "steps": step,
        "steps_per_epoch": steps_per_epoch,
        "resumed_from_step": None if resume is None else checkpoint_step(resume),
        "first_loss": log[0]["loss"] if log else None,
        "last_loss": log[-1]["loss"] if log else None,
        "first_kl": log[0]["kl"] if log else None,
        "last_kl": log[-1]["kl"] if log else None,
        "output": final,
        "settings": config.model_dump(mode="json"),
        "seconds": time.perf_counter() - t0,
    }
    write_csv(out / "train_log.csv", _log_frame(log))
    write_json(out / "train.json", summary)
    return summary


class _Threads:
    """Use `n` torch threads inside the block, then restore the setting."""

    def __init__(self, torch, n: int | None) -> None:
        self.torch, self.n, self.before = torch, n, torch.get_num_threads()

    def __enter__(self):
        if self.n:
            self.torch.set_num_threads(self.n)

    def __exit__(self, *exc):
        if self.n:
            self.torch.set_num_threads(self.before)


def _log_frame(log):
    import pandas as pd

    return pd.DataFrame(log, columns=["step", "epoch", "loss", "kl", "mass"])


def _find_resume(out: Path, config: TrainConfig) -> Path | None:
    """The latest complete checkpoint of an earlier run with the same settings, if any."""
    from valuescope.control.soft_label_trainer import complete_checkpoints

    root = out / "checkpoints"
    found = complete_checkpoints(root)
    if not found:
        if any(root.glob("step-*")):
            raise ControlError(
                f"{root} holds checkpoints of an earlier valuescope version (step-*), which "
                "this one cannot resume; delete it to start over"
            )
        return None
    saved = out / "train_config.json"
    before = json.loads(saved.read_text()) if saved.is_file() else None
    if before != json.loads(json.dumps(config.fingerprint())):
        diff = sorted(
            k for k in config.fingerprint() if (before or {}).get(k) != config.fingerprint()[k]
        )
        raise ControlError(
            f"{out} holds checkpoints from different settings ({', '.join(diff) or 'unknown'}); "
            "use another --out or delete its checkpoints/ to start over"
        )
    return found[-1]


def _save_final(model, backend, out: Path, config: TrainConfig) -> str:
    """adapter/ (PEFT format) for LoRA, model/ (a full hf/ directory) for --full.

    Written to a temporary directory and swapped in, so a killed save never leaves half
    a model where `control evaluate` would load it.
    """
    if config.full:

        def save_model(target: Path) -> None:
            model.save_pretrained(target)
            backend.tokenizer.save_pretrained(target)

        replace_dir(out / "model", save_model)
        return "model"

    def save_adapter(target: Path) -> None:
        with _quiet_peft():  # a GGUF base has no config file next to it: nothing is wrong
            model.save_pretrained(target)

    replace_dir(out / "adapter", save_adapter)
    return "adapter"


def load_trained(train_dir: Path, threads: int | None = None):
    """The fine-tuned model as an HFBackend (adapter merged), named apart from its base."""
    import hashlib

    train_dir = Path(train_dir)
    info_path = train_dir / "train.json"
    if not info_path.is_file():
        raise ControlError(f"{train_dir} is not a training directory (no train.json)")
    info = json.loads(info_path.read_text())
    _, _, peft = require_training_stack()
    if info["output"] == "model":  # keep the answer settings (prefill, dtype) of the base
        from urllib.parse import urlencode

        from valuescope.models.registry import parse_model_string

        params = parse_model_string(info["model"])[2]
        params.pop("gguf_file", None)
        query = urlencode(params)
        model = f"hf/{train_dir / 'model'}" + (f"?{query}" if query else "")
        return load_backend(model, threads), info
    backend = load_backend(info["model"], threads)
    weights = sorted((train_dir / "adapter").glob("adapter_model.*"))
    if not weights:
        raise ControlError(f"{train_dir}/adapter holds no adapter weights")
    digest = hashlib.sha256(weights[0].read_bytes()).hexdigest()[:12]
    with _quiet_peft():
        merged = peft.PeftModel.from_pretrained(backend.model, train_dir / "adapter")
    backend.model = merged.merge_and_unload().eval()
    backend.name = f"{backend.name}#control={digest}"
    return backend, info
