"""Up-front memory estimate for fine-tuning, checked against what the machine has free."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from valuescope.control.errors import ControlError

GB = 1024**3
# Refuse when the estimate exceeds this share of the free memory.
HEADROOM = 0.9
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


@dataclass
class MemoryEstimate:
    """Bytes needed to train, by part (a rough, deliberately generous estimate)."""

    n_params: int
    n_trainable: int
    weights: float
    gradients_optimizer: float
    activations: float

    @property
    def total(self) -> float:
        return 1.2 * (self.weights + self.gradients_optimizer + self.activations)

    def describe(self) -> str:
        return (
            f"about {self.total / GB:.2f} GB (weights {self.weights / GB:.2f}, gradients and "
            f"optimizer {self.gradients_optimizer / GB:.2f}, activations "
            f"{self.activations / GB:.2f}, plus 20%)"
        )


def estimate(
    config: Any,
    n_params: int,
    n_trainable: int,
    *,
    batch_size: int,
    seq_len: int,
    dtype: str = "float32",
) -> MemoryEstimate:
    """Weights in `dtype`; float32 gradients and two AdamW moments per trainable weight;
    activations kept for the backward pass of every layer (no checkpointing)."""
    width = DTYPE_BYTES.get(dtype, 4)
    hidden = int(getattr(config, "hidden_size", 0) or 0)
    inter = int(getattr(config, "intermediate_size", 0) or 4 * hidden)
    layers = int(getattr(config, "num_hidden_layers", 0) or 0)
    heads = int(getattr(config, "num_attention_heads", 0) or 1)
    vocab = int(getattr(config, "vocab_size", 0) or 0)
    tokens = batch_size * seq_len
    per_layer = tokens * (12 * hidden + 4 * inter) + batch_size * heads * seq_len * seq_len
    acts = width * (layers * per_layer + 2 * batch_size * vocab)
    return MemoryEstimate(
        n_params=n_params,
        n_trainable=n_trainable,
        weights=float(n_params * width),
        gradients_optimizer=float(n_trainable * 4 * 3),
        activations=float(acts),
    )


def available_bytes(device: str) -> tuple[float, str]:
    """(free bytes, where): GPU memory for cuda, else RAM (within a cgroup limit if any)."""
    if device.startswith("cuda"):
        import torch

        free, _ = torch.cuda.mem_get_info()
        return float(free), "GPU memory"
    import psutil

    free = float(psutil.virtual_memory().available)
    limit = _cgroup_free()
    return (min(free, limit) if limit else free), "RAM"


def _cgroup_free() -> float | None:
    root = Path("/sys/fs/cgroup")
    try:
        raw = (root / "memory.max").read_text().strip()
        if raw == "max":
            return None
        used = float((root / "memory.current").read_text().strip())
        return float(raw) - used
    except (OSError, ValueError):
        return None


def _count(n: int) -> str:
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.0f}k"


def check_memory(est: MemoryEstimate, device: str, limit_gb: float | None = None) -> dict:
    """Refuse with the figures when the estimate does not fit; else return them."""
    if limit_gb:
        free, where = limit_gb * GB, "memory is allowed (--memory-limit-gb)"
    else:
        free, kind = available_bytes(device)
        where = f"{kind} is free"
    if est.total > HEADROOM * free:
        raise ControlError(
            f"training needs {est.describe()} for {_count(est.n_params)} parameters "
            f"({_count(est.n_trainable)} trainable), but only {free / GB:.2f} GB of {where}: "
            "lower --batch-size or --max-length, use LoRA instead of --full, "
            "or pick a smaller model"
        )
    return {
        "estimate_gb": est.total / GB,
        "free_gb": free / GB,
        "where": where,
        "n_params": est.n_params,
        "n_trainable": est.n_trainable,
    }
