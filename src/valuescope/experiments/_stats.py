"""Shared helpers for the analyses: bootstrap intervals, headline entries, data, plots.

The API here is stable; analyses written by different people import it:
- `bootstrap_corr(x, y, seed, n_boot=1000, level=0.9, method="pearson")`
  -> {"value", "ci_low", "ci_high", "n", "p_value", "interval"} (BCa or percentile)
- `bootstrap_mean(x, seed, n_boot=1000, level=0.9)` -> the same but "p_value" (shares, errors)
(both wrap `valuescope.stats`, which every statistic of the analyses goes through)
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

from valuescope import stats
from valuescope.atomic import atomic_write
from valuescope.experiments.base import ExperimentError
from valuescope.stats import UndefinedStatistic


def bootstrap_corr(
    x: Any,
    y: Any,
    seed: int,
    n_boot: int = 1000,
    level: float = 0.9,
    method: str = "pearson",
) -> dict[str, float]:
    """Correlation of the finite pairs with a BCa bootstrap interval over pairs and a
    two-sided permutation p-value for "no correlation" (`valuescope.stats.correlation_test`).

    The interval falls back to percentile where BCa cannot run (tiny n, undefined draws);
    `interval` says which. With fewer than ~30 pairs read the interval together with the
    p-value. Raises ExperimentError when the correlation is undefined (fewer than 3 pairs,
    or one side constant) — a degenerate measurement, not a zero effect.
    """
    try:
        return stats.correlation_test(x, y, seed, method, level=level, n_resamples=n_boot)
    except UndefinedStatistic as exc:
        raise ExperimentError(str(exc)) from None


def bootstrap_mean(x: Any, seed: int, n_boot: int = 1000, level: float = 0.9) -> dict[str, float]:
    """Mean of `x` (e.g. 0/1 hits or absolute errors) with a BCa bootstrap interval."""
    try:
        return stats.mean_test(x, seed, level=level, n_resamples=n_boot)
    except UndefinedStatistic as exc:
        raise ExperimentError(str(exc)) from None


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
    from matplotlib.figure import Figure  # the object API: no pyplot state, no backend switch

    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    fig = Figure(figsize=(5, 4))
    ax = fig.subplots()
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
    """Free-text replies of the context's model to single-turn user prompts (greedy),
    kept in the analysis's `generations.sqlite` (`ExperimentContext.generate`)."""
    messages = [(("user", p),) for p in prompts]
    return ctx.generate(messages, max_tokens=max_tokens, temperature=0.0, seed=ctx.seed)
