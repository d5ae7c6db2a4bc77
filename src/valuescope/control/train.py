"""`valuescope control train`: fine-tune an hf/ model toward the assembly's vote shares.

Each training pair gives two prompts (both orders, the same forced-choice template the
measurements use). The target is a soft label: P(first label) = the assembly's share for
the first-listed outcome. The loss is the cross-entropy between that target, spread over
the two answer tokens, and the model's next-token distribution over the whole vocabulary:

    loss = -(q log P(A) + (1 - q) log P(B))
         = KL(q || P(A)/(P(A)+P(B))) + H(q) - log(P(A) + P(B))

so it both matches the renormalised answer share (what `valuescope run` reads in logprob
mode) and keeps the probability mass on the answer tokens. TRL's SFTTrainer trains on
target token sequences (hard labels), so the soft-label loss runs in a plain torch loop
over a PEFT LoRA model (`--full` trains every weight instead). Checkpoints let an
interrupted run resume; the data order and LoRA initialisation are seeded.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
import shutil
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from valuescope.atomic import replace_dir
from valuescope.control.assembly_run import load_assembly
from valuescope.control.errors import ControlError
from valuescope.control.memory import check_memory, estimate
from valuescope.elicit import get_template
from valuescope.errors import MissingDependencyError
from valuescope.runcore.rundir import prepare_out_dir, write_csv, write_json

PIP_LINE = 'pip install "valuescope[hf,control]"'
API_PROVIDERS = ("openai", "anthropic", "vllm")
GGUF_PROVIDERS = ("embedded", "llamacpp")


@dataclass
class TrainConfig:
    """Settings of one fine-tuning run (recorded in train.json; a resume must match)."""

    model: str
    assembly: Path
    out: Path = Path("runs/control")
    epochs: int = 3
    max_steps: int | None = None
    batch_size: int = 8
    lr: float = 5e-4
    lora_rank: int = 8
    lora_alpha: float = 16.0
    lora_layers: int | None = None
    full: bool = False
    max_length: int = 512
    template: str = "default"
    save_every: int = 20
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    memory_limit_gb: float | None = None

    def fingerprint(self) -> dict[str, Any]:
        """The settings a checkpoint must share to be resumed."""
        keep = ("model", "epochs", "batch_size", "lr", "lora_rank", "lora_alpha", "lora_layers")
        keep += ("full",)
        keep += ("max_length", "template", "seed")
        return {k: getattr(self, k) for k in keep} | {"assembly": str(Path(self.assembly))}


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


def batch_logprobs(torch, model, batch: list[list[int]], pad_id: int, answer_ids, device):
    """log P(A), log P(B) (summed over each label's token ids) after each prompt."""
    width = max(len(ids) for ids in batch)
    ids = torch.tensor([[pad_id] * (width - len(r)) + list(r) for r in batch], device=device)
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in batch], device=device)
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=ids, attention_mask=mask, position_ids=pos, logits_to_keep=1)
    logp = torch.log_softmax(out.logits[:, -1, :].float(), dim=-1)
    log_a = torch.logsumexp(logp[:, answer_ids["A"]], dim=-1)
    log_b = torch.logsumexp(logp[:, answer_ids["B"]], dim=-1)
    return log_a, log_b


def soft_loss(torch, log_a, log_b, q):
    """Cross-entropy with soft targets, and the KL between renormalised shares (nats)."""
    loss = -(q * log_a + (1 - q) * log_b)
    log_mass = torch.logaddexp(log_a, log_b)
    p = torch.exp(log_a - log_mass).clamp(1e-6, 1 - 1e-6)
    kl = _bernoulli_kl(torch, q, p)
    return loss, kl, torch.exp(log_mass)


def _bernoulli_kl(torch, q, p):
    q = q.clamp(0, 1)
    xlogy = torch.special.xlogy
    return xlogy(q, q) - xlogy(q, p) + xlogy(1 - q, 1 - q) - xlogy(1 - q, 1 - p)


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
    if config.batch_size < 1 or config.epochs < 1 or config.lr <= 0:
        raise ControlError("--batch-size and --epochs must be at least 1 and --lr positive")
    torch, _, peft = require_training_stack()
    device = resolve_device(torch, config.device)
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
    model = wrap_lora(peft, torch, backend.model, config).to(device)
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=0.0)
    steps_per_epoch = math.ceil(len(examples) / config.batch_size)
    total = steps_per_epoch * config.epochs
    if config.max_steps is not None:
        total = min(total, config.max_steps)
    step, log = 0, []
    if resume is not None:
        step, log = _load_checkpoint(torch, model, optim, resume)
    write_json(out / "train_config.json", config.fingerprint())
    if progress is not None:
        progress.start(total, f"training {config.model}")
        progress.advance(step)
    threads = _Threads(torch, config.threads)
    with threads:
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
                _save_checkpoint(torch, model, optim, out, step, log)
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
        "resumed_from_step": None if resume is None else int(resume.name.split("-")[1]),
        "first_loss": log[0]["loss"] if log else None,
        "last_loss": log[-1]["loss"] if log else None,
        "first_kl": log[0]["kl"] if log else None,
        "last_kl": log[-1]["kl"] if log else None,
        "output": final,
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
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


def _trainable_state(model) -> dict:
    return {k: v.detach().cpu() for k, v in model.named_parameters() if v.requires_grad}


def _save_checkpoint(torch, model, optim, out: Path, step: int, log: list) -> None:
    """checkpoints/step-NNNNNN/: trainable weights, optimizer state, the log so far.

    Written to a temporary folder and renamed, so a killed run never leaves half a
    checkpoint; only the latest two are kept.
    """
    root = out / "checkpoints"
    root.mkdir(exist_ok=True)
    final = root / f"step-{step:06d}"
    tmp = root / f".tmp-{step:06d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    torch.save(_trainable_state(model), tmp / "trainable.pt")
    torch.save(optim.state_dict(), tmp / "optimizer.pt")
    (tmp / "log.json").write_text(json.dumps(log))
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    for old in sorted(root.glob("step-*"))[:-2]:
        shutil.rmtree(old, ignore_errors=True)


def _find_resume(out: Path, config: TrainConfig) -> Path | None:
    """The latest checkpoint of an earlier run with the same settings, if any."""
    found = sorted((out / "checkpoints").glob("step-*")) if (out / "checkpoints").is_dir() else []
    if not found:
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


def _load_checkpoint(torch, model, optim, path: Path) -> tuple[int, list]:
    state = torch.load(path / "trainable.pt", map_location="cpu")
    params = dict(model.named_parameters())
    with torch.no_grad():
        for k, v in state.items():
            params[k].copy_(v)
    optim.load_state_dict(torch.load(path / "optimizer.pt", map_location="cpu"))
    log = json.loads((path / "log.json").read_text())
    return int(path.name.split("-")[1]), log


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
