"""Convergence: do different models (runs) hold similar utilities, more so when more capable?

Reads existing run directories (`--run DIR`, repeatable). On the outcomes all runs share
(matched by text) each run's utility vector is centred (its mean over the shared outcomes
subtracted) and compared by cosine similarity, which for centred vectors is the Pearson
correlation. The mean over pairs of runs gets a BCa bootstrap interval over outcomes
(percentile where BCa cannot run). Coherence is each run's held-out accuracy
(metrics.json). Capability is what the user gives (`--param capability=a,b,c` in --run
order, or `--param capability_LABEL=x` per run, LABEL = the run directory's name), else
the parameter count read from the model name ("...-135m", "...-1.7b", "7B"; one size in
the name, see `valuescope.common.model_size`); with 3 or more known values the analysis
reports Spearman correlations of coherence and of agreement with log capability.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from valuescope import stats
from valuescope.atomic import atomic_write
from valuescope.common.model_size import parameters_from_name
from valuescope.errors import ValuescopeError
from valuescope.experiments._stats import bootstrap_corr, headline, headline_from
from valuescope.experiments.base import Experiment, ExperimentContext, ExperimentError
from valuescope.runcore import reader

N_BOOT = 1000
LEVEL = 0.9


def _load_run(path: Path) -> tuple[pd.DataFrame, dict]:
    path = Path(path)
    if not path.is_dir():
        raise ExperimentError(f"--run {path}: not a directory")
    table = path / "utilities.csv"
    if not table.exists():
        raise ExperimentError(f"--run {path}: no utilities.csv (is it a finished run directory?)")
    try:
        frame = reader.read_utilities(path, ("outcome", "mean"))
        metrics = (
            reader.read_json(path / reader.METRICS) if (path / reader.METRICS).exists() else {}
        )
    except ValuescopeError as exc:
        raise ExperimentError(str(exc)) from None
    return frame, metrics


def _labels(paths: list[Path]) -> list[str]:
    labels = []
    for i, p in enumerate(paths):
        name = Path(p).resolve().name or f"run{i + 1}"
        labels.append(name if name not in labels else f"{name}-{i + 1}")
    return labels


def _capabilities(ctx: ExperimentContext, labels: list[str], models: list[str]) -> list[tuple]:
    """(value or None, source) per run."""
    given: list[float | None] = [None] * len(labels)
    raw = ctx.params.get("capability")
    if raw:
        parts = [v.strip() for v in raw.split(",")]
        if len(parts) != len(labels):
            raise ExperimentError(
                f"--param capability: give one value per --run ({len(labels)}), got {len(parts)}"
            )
        given = [_number(v, "capability") for v in parts]
    for i, label in enumerate(labels):
        key = f"capability_{label}"
        if key in ctx.params:
            given[i] = _number(ctx.params[key], key)
    unknown = [k for k in ctx.params if k.startswith("capability_")]
    for key in unknown:
        if key[len("capability_") :] not in labels:
            raise ExperimentError(f"--param {key}: no run named {key[11:]!r}; runs: {labels}")
    out = []
    for value, model in zip(given, models, strict=True):
        if value is not None:
            out.append((value, "given"))
        elif (size := parameters_from_name(model)) is not None:
            out.append((size, "model name"))
        else:
            out.append((None, "unknown"))
    return out


def _number(raw: str, key: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ExperimentError(f"--param {key}: {raw!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise ExperimentError(f"--param {key}: {raw!r} must be a positive number")
    return value


def _mean_offdiag(matrix: np.ndarray) -> float:
    k = matrix.shape[0]
    return float((matrix.sum() - np.trace(matrix)) / (k * (k - 1)))


def _mean_similarity(*rows: np.ndarray) -> float:
    """Mean pairwise similarity of the runs' vectors: the statistic bootstrapped over
    outcomes (each row one run, resampled at the same outcomes)."""
    return _mean_offdiag(stats.cosine_matrix(np.vstack(rows)))


def run(ctx: ExperimentContext) -> dict[str, Any]:
    paths = list(ctx.run_dirs)
    if len(paths) < 2:
        raise ExperimentError(
            f"convergence compares runs: give at least 2 with --run DIR, got {len(paths)}"
        )
    labels = _labels(paths)
    loaded = [_load_run(p) for p in paths]
    shared = set(loaded[0][0]["outcome"])
    for frame, _ in loaded[1:]:
        shared &= set(frame["outcome"])
    shared_list = [t for t in loaded[0][0]["outcome"] if t in shared]
    if len(shared_list) < 3:
        raise ExperimentError(
            f"convergence: the runs share {len(shared_list)} outcome(s); at least 3 are needed "
            "(measure the runs on the same outcome set)"
        )
    vectors = []
    for (frame, _), path in zip(loaded, paths, strict=True):
        by_text = frame.drop_duplicates("outcome").set_index("outcome")["mean"]
        v = by_text.loc[shared_list].to_numpy(float)
        if not np.all(np.isfinite(v)):
            raise ExperimentError(f"--run {path}: utilities.csv has missing utility values")
        if np.ptp(v) < 1e-12:
            raise ExperimentError(
                f"--run {path}: every shared outcome has the same utility; similarity undefined"
            )
        vectors.append(v)
    vectors = np.vstack(vectors)
    matrix = stats.cosine_matrix(vectors)
    mean_sim = _mean_offdiag(matrix)
    n = len(shared_list)
    lo, hi, _ = stats.bootstrap_interval(
        tuple(vectors), _mean_similarity, ctx.seed, level=LEVEL, n_resamples=N_BOOT,
        vectorized=False,
    )  # fmt: skip

    models = [str(m.get("model", "")) for _, m in loaded]
    coherence = [m.get("heldout_accuracy") for _, m in loaded]
    caps = _capabilities(ctx, labels, models)
    k = len(labels)
    agreement = [(matrix[i].sum() - 1.0) / (k - 1) for i in range(k)]
    rows = [
        {
            "run": labels[i],
            "path": str(paths[i]),
            "model": models[i] or None,
            "n_outcomes": int(len(loaded[i][0])),
            "coherence": coherence[i],
            "capability": caps[i][0],
            "capability_source": caps[i][1],
            "mean_agreement": float(agreement[i]),
        }
        for i in range(k)
    ]
    head = {
        "mean_similarity": headline(mean_sim, lo, hi, "mean cosine similarity of centred utilities")
    }
    trends = _trends(rows, ctx.seed)
    for key, stat in trends.items():
        head[key] = headline_from(stat, stat["label"])
    result = {
        "headline": head,
        "n_runs": k,
        "n_shared_outcomes": n,
        "run_dirs": [str(p) for p in paths],
        "similarity_matrix": {
            "labels": labels,
            "values": [[float(x) for x in row] for row in matrix],
        },
        "tables": {
            "runs": rows,
            "similarity": [
                {"run": labels[i], **{labels[j]: float(matrix[i, j]) for j in range(k)}}
                for i in range(k)
            ],
        },
        "reading": _reading(mean_sim, lo, hi, n, rows, trends),
        "figures": [_heatmap(ctx, matrix, labels)],
    }
    return result


def _trends(rows: list[dict], seed: int) -> dict[str, dict]:
    """Spearman correlations with log capability (average ranks, so ties are handled;
    each bootstrap draw is ranked again)."""
    known = [r for r in rows if r["capability"] is not None]
    out: dict[str, dict] = {}
    if len({r["capability"] for r in known}) < 3:
        return out  # fewer than 3 distinct capabilities: no trend to speak of
    log_cap = np.log10([r["capability"] for r in known])
    pairs = {
        "coherence_vs_capability": ([r["coherence"] for r in known], "coherence"),
        "agreement_vs_capability": ([r["mean_agreement"] for r in known], "agreement"),
    }
    for key, (values, what) in pairs.items():
        y = np.array([np.nan if v is None else float(v) for v in values])
        ok = np.isfinite(y)
        if ok.sum() < 3:
            continue
        try:
            stat = bootstrap_corr(log_cap[ok], y[ok], seed=seed, n_boot=N_BOOT, method="spearman")
        except ExperimentError:
            continue  # constant values: no trend to report
        stat["label"] = f"Spearman correlation of {what} with log capability"
        out[key] = stat
    return out


def _reading(mean_sim: float, lo, hi, n: int, rows: list[dict], trends: dict[str, dict]) -> str:
    text = (
        f"Across {len(rows)} runs and {n} shared outcomes the centred utility vectors have a "
        f"mean cosine similarity of {mean_sim:.2f}"
    )
    if lo is not None:
        text += f" (90% interval {lo:.2f} to {hi:.2f} over outcomes)"
    text += "; 1 means the same preferences up to scale and shift, 0 unrelated, -1 opposite."
    if trends:
        for stat in trends.values():
            text += f" {stat['label']}: {stat['value']:+.2f}."
    else:
        coh = ", ".join(
            f"{r['run']} {r['coherence']:.2f}" for r in rows if r["coherence"] is not None
        )
        text += (
            " Fewer than 3 runs have distinct known capabilities, so no trend with "
            "capability is reported" + (f"; held-out accuracy per run: {coh}." if coh else ".")
        )
    return text


def _heatmap(ctx: ExperimentContext, matrix: np.ndarray, labels: list[str]) -> str:
    from matplotlib.figure import Figure

    from valuescope.report.plots import styled

    name = "convergence_matrix.svg"
    k = len(labels)
    with styled():
        fig = Figure(figsize=(1.0 + 0.7 * k + 2, 0.7 * k + 1.5))
        ax = fig.subplots()
        image = ax.imshow(matrix, vmin=-1, vmax=1, cmap="RdBu")
        ax.set_xticks(range(k), labels, rotation=45, ha="right")
        ax.set_yticks(range(k), labels)
        ax.grid(False)
        for i in range(k):
            for j in range(k):
                ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=8)
        fig.colorbar(image, ax=ax, label="cosine similarity (centred)")
        ax.set_title("Agreement between runs")
        fig.tight_layout()
        atomic_write(ctx.out / name, lambda tmp: fig.savefig(tmp, format="svg"))
    return name


EXPERIMENT = Experiment(
    name="convergence",
    title="Convergence across models",
    summary="similarity of utilities across runs; coherence and agreement vs capability",
    run=run,
)
