"""Shared helpers for the analyses: bootstrap intervals, headline entries, data, plots.

The API here is stable; analyses written by different people import it:
- `bootstrap_corr(x, y, seed, n_boot=1000, level=0.9, method="pearson")`
  -> {"value", "ci_low", "ci_high", "n", "p_value"}
- `bootstrap_mean(x, seed, n_boot=1000, level=0.9)` -> same keys (shares, errors)
- `headline(value, ci_low, ci_high, label)` -> a headline entry for `write_result`
- `load_data(name)` -> the parsed YAML file `experiments/data/NAME.yaml`
- `scatter_svg(path, x, y, xlabel, ylabel, title, diagonal=False)` -> writes an SVG
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from scipy.stats import rankdata

from valuescope.atomic import atomic_write
from valuescope.experiments.base import ExperimentError


def _corr(x: np.ndarray, y: np.ndarray, method: str) -> float:
    if method == "spearman":  # average ranks: tied values share their rank
        x, y = rankdata(x), rankdata(y)
    sx, sy = x.std(), y.std()
    if sx == 0 or sy == 0:
        return float("nan")
    return float(np.mean((x - x.mean()) * (y - y.mean())) / (sx * sy))


def bootstrap_corr(
    x: Any,
    y: Any,
    seed: int,
    n_boot: int = 1000,
    level: float = 0.9,
    method: str = "pearson",
) -> dict[str, float]:
    """Correlation of paired values with a percentile bootstrap interval over pairs.

    `p_value` is a two-sided permutation p-value for "no correlation" (`n_boot`
    shuffles of y). The percentile interval is approximate: with fewer than ~30 pairs it
    is often too narrow (it excluded 0 for a coin-flipping agent in 4 of 16 quick runs),
    so read small-n intervals together with the p-value.

    Raises ExperimentError when the correlation is undefined (fewer than 3 pairs, or
    one side constant) — a degenerate measurement, not a zero effect.
    """
    if method not in ("pearson", "spearman"):
        raise ExperimentError(f"correlation method {method!r}: expected pearson or spearman")
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ExperimentError(f"correlation needs two equal-length lists, got {x.shape}, {y.shape}")
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.size < 3:
        raise ExperimentError(f"correlation needs at least 3 finite pairs, got {x.size}")
    value = _corr(x, y, method)
    if not np.isfinite(value):
        raise ExperimentError(
            "correlation undefined: one side is constant (the model gave every item the "
            "same utility or score)"
        )
    rng = np.random.default_rng(seed)
    reps = np.empty(n_boot)
    for k in range(n_boot):
        idx = rng.integers(0, x.size, x.size)
        reps[k] = _corr(x[idx], y[idx], method)
    reps = reps[np.isfinite(reps)]
    lo, hi = _percentiles(reps, level)
    perms = np.array([_corr(x, rng.permutation(y), method) for _ in range(n_boot)])
    p_value = (1 + np.sum(np.abs(perms) >= abs(value) - 1e-12)) / (1 + n_boot)
    return {
        "value": value,
        "ci_low": lo,
        "ci_high": hi,
        "n": int(x.size),
        "p_value": float(p_value),
    }


def bootstrap_mean(x: Any, seed: int, n_boot: int = 1000, level: float = 0.9) -> dict[str, float]:
    """Mean of `x` (e.g. 0/1 hits or absolute errors) with a percentile bootstrap interval."""
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        raise ExperimentError("mean of an empty list")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, (n_boot, x.size))
    reps = x[idx].mean(axis=1)
    lo, hi = _percentiles(reps, level)
    return {"value": float(x.mean()), "ci_low": lo, "ci_high": hi, "n": int(x.size)}


def _percentiles(reps: np.ndarray, level: float) -> tuple[float | None, float | None]:
    if not 0 < level < 1:
        raise ExperimentError(f"interval level {level} must lie strictly between 0 and 1")
    if reps.size == 0:
        return None, None
    tail = 100 * (1 - level) / 2
    return float(np.percentile(reps, tail)), float(np.percentile(reps, 100 - tail))


def headline(value: float, ci_low: float | None, ci_high: float | None, label: str) -> dict:
    """One headline entry as `write_result` expects it."""
    return {
        "value": float(value),
        "ci_low": None if ci_low is None else float(ci_low),
        "ci_high": None if ci_high is None else float(ci_high),
        "label": label,
    }


def headline_from(stat: dict[str, float], label: str) -> dict:
    """A headline entry from a `bootstrap_corr` / `bootstrap_mean` result."""
    return headline(stat["value"], stat["ci_low"], stat["ci_high"], label)


def load_data(name: str) -> Any:
    """The parsed dataset `valuescope/experiments/data/NAME.yaml` shipped with the package."""
    ref = resources.files("valuescope.experiments").joinpath("data", f"{name}.yaml")
    try:
        text = ref.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ExperimentError(f"dataset {name}.yaml is missing from the package") from None
    return yaml.safe_load(text)


def scatter_svg(
    path: Path,
    x: Any,
    y: Any,
    xlabel: str,
    ylabel: str,
    title: str,
    diagonal: bool = False,
    groups: list[str] | None = None,
) -> str:
    """Write a scatter plot as SVG at `path`; returns the file name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    fig, ax = plt.subplots(figsize=(5, 4))
    if groups is None:
        ax.scatter(x, y, s=18, alpha=0.75)
    else:
        for g in dict.fromkeys(groups):
            sel = np.array([gg == g for gg in groups])
            ax.scatter(x[sel], y[sel], s=18, alpha=0.75, label=g)
        ax.legend(fontsize=8)
    if diagonal and x.size:
        lo = float(min(x.min(), y.min()))
        hi = float(max(x.max(), y.max()))
        ax.plot([lo, hi], [lo, hi], color="grey", linewidth=1, linestyle="--")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="svg"))
    plt.close(fig)
    return Path(path).name


def measure_options(quick: bool, n: int) -> dict:
    """Run overrides for a utility measurement: in quick mode 3 N training pairs and at
    most N / 2 held-out pairs (minutes on the embedded model); else the run defaults."""
    return {"budget": 3 * n, "max_heldout": max(10, n // 2)} if quick else {}


_NUMBER_RE = re.compile(r"-?\d+(?:\.\d+)?")


def parse_number(text: str | None, lo: float, hi: float) -> float | None:
    """The first number in `text` that lies in [lo, hi], or None."""
    for raw in _NUMBER_RE.findall(text or ""):
        value = float(raw)
        if lo <= value <= hi:
            return value
    return None


def ask(ctx: Any, prompts: list[str], max_tokens: int = 24) -> list[str]:
    """Free-text replies of the context's model to single-turn user prompts (greedy)."""
    backend = ctx.backend()
    generate = getattr(backend, "generate", None)
    if generate is None:
        raise ExperimentError(f"model {ctx.model} cannot generate free text")
    messages = [(("user", p),) for p in prompts]
    return list(generate(messages, max_tokens=max_tokens, temperature=0.0, seed=ctx.seed))


def shuffled(items: list, seed: int, tag: str) -> list:
    """`items` in a seeded random order (outcomes are measured in no meaningful order)."""
    from valuescope.models.sim import stable_seed

    order = np.random.default_rng(stable_seed("order", seed, tag)).permutation(len(items))
    return [items[i] for i in order]
