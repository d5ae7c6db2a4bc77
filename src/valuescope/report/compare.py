"""Compare several run directories: convergence of utilities, coherence across models.

Plain data functions (``load_runs``, ``align``, ``similarity``, ``metrics_table``, ...)
feed ``build_comparison``, which writes ``report.html``, ``tables/*.csv|parquet`` and
``figures/*.svg|png`` into one output directory.

Utilities are matched across runs by outcome text (whitespace-normalised). Thurstonian
utilities are defined only up to shift and scale, so the cosine similarity of two runs
is taken between mean-centred utility vectors on the shared outcomes (which makes it
the Pearson correlation of the utilities); scale does not affect it.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from valuescope import stats
from valuescope.atomic import atomic_write, write_text
from valuescope.common.model_size import parameters_from_name
from valuescope.errors import ValuescopeError
from valuescope.report import compare_plots, plots, size_trend
from valuescope.report.html import (
    RunData,
    _calibration,
    _env,
    _version,
    fmt,
    fmt_int,
    fmt_interval,
    load_run,
    num,
)

N_BOOT = 1000


def calibration_figure(pairs: pd.DataFrame | None) -> Any:
    """The run page's calibration figure (held-out pairs), or ``None``."""
    return _calibration(pairs)[0]


SIZE_UNITS = {"k": 1e3, "m": 1e6, "b": 1e9, "t": 1e12}
_SIZE_VALUE = re.compile(r"^\s*(\d+(?:\.\d+)?(?:e\d+)?)\s*([kmbt]?)\s*$", re.I)
METRIC_COLUMNS = [
    "heldout_accuracy", "heldout_log_loss", "heldout_kl", "completeness",
    "cycle_log_prob", "position_bias", "refusal_rate",
]  # fmt: skip


class ComparisonError(ValuescopeError):
    """Runs that cannot be compared (missing, empty, or without shared outcomes)."""


@dataclass
class Comparison:
    """Everything the comparison page and exports show, as plain tables."""

    labels: list[str]
    runs: list[RunData]
    dirs: list[Path]
    utilities: pd.DataFrame  # shared outcomes, wide: outcome, category, LABEL mean/ci columns
    metrics: pd.DataFrame  # one row per run
    cosine: pd.DataFrame  # label x label
    spearman: pd.DataFrame  # label x label
    pairs: pd.DataFrame  # one row per pair of runs, with bootstrap intervals
    categories: pd.DataFrame  # long: run, category, mean utility, coherence
    trend: pd.DataFrame = field(default_factory=pd.DataFrame)  # size steps: paired changes


def load_runs(run_dirs: list[str | Path]) -> list[RunData]:
    """Read every run directory, with a one-line error for a missing or non-run one."""
    if not run_dirs:
        raise ComparisonError("name at least one run directory")
    runs = []
    for d in run_dirs:
        path = Path(d)
        if not path.is_dir():
            raise ComparisonError(f"{path}: no such run directory")
        if not (path / "utilities.csv").is_file():
            raise ComparisonError(f"{path}: no utilities.csv (is this a run directory?)")
        runs.append(load_run(path))
    return runs


def run_labels(runs: list[RunData], dirs: list[Path]) -> list[str]:
    """Short unique names: the model string where unique, else model plus directory."""
    models = [str(r.metrics.get("model") or r.name) for r in runs]
    labels = [
        m if models.count(m) == 1 else f"{m} ({r.name})" for m, r in zip(models, runs, strict=True)
    ]
    if len(set(labels)) < len(labels):  # same model and same directory name
        labels = [f"{lab} [{i + 1}]" for i, lab in enumerate(labels)]
    return labels


def _key(text: object) -> str:
    return " ".join(str(text).split()).casefold()


def align(runs: list[RunData], labels: list[str]) -> pd.DataFrame:
    """Utilities of the outcomes every run shares, matched by outcome text.

    Columns: ``outcome``, ``category`` (from the first run), then for each run
    ``LABEL`` (mean), ``LABEL ci_low``, ``LABEL ci_high``. Rows follow the first run.
    """
    frames = []
    for run, label in zip(runs, labels, strict=True):
        u = run.utilities.assign(key=run.utilities["outcome"].map(_key))
        u = u.drop_duplicates("key").set_index("key")
        frames.append((label, u))
    keys = list(frames[0][1].index)
    for _, u in frames[1:]:
        present = set(u.index)
        keys = [k for k in keys if k in present]
    if len(runs) > 1 and len(keys) < 2:
        names = ", ".join(r.name for r in runs)
        raise ComparisonError(
            f"runs {names} share {len(keys)} outcome(s) by text; comparing needs at least 2"
        )
    first = frames[0][1].loc[keys]
    out = pd.DataFrame({"outcome": first["outcome"].to_numpy(), "category": first["category"]})
    out = out.reset_index(drop=True)
    for label, u in frames:
        part = u.loc[keys]
        out[label] = part["mean"].to_numpy()
        out[f"{label} ci_low"] = part["ci_low"].to_numpy()
        out[f"{label} ci_high"] = part["ci_high"].to_numpy()
    return out


def _interval(x: np.ndarray, y: np.ndarray, statistic: str, seed: int, n_boot: int):
    """95% BCa bootstrap interval over outcomes (NaN, NaN where there is none)."""
    ci = stats.paired_interval(x, y, statistic, seed, level=0.95, n_resamples=n_boot)
    return (np.nan, np.nan) if ci.low is None else (ci.low, ci.high)


def similarity(
    utilities: pd.DataFrame, labels: list[str], seed: int = 0, n_boot: int = N_BOOT
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Cosine and Spearman matrices, and a long table of run pairs with 95% intervals."""
    n = len(labels)
    cos = np.eye(n)
    rho = np.eye(n)
    rows = []
    ok = utilities.dropna(subset=labels)
    for i, label in enumerate(labels):
        if ok[label].nunique() <= 1:  # no spread: similarity with anything is undefined
            cos[i, i] = rho[i, i] = np.nan
    for i in range(n):
        for j in range(i + 1, n):
            x, y = ok[labels[i]].to_numpy(float), ok[labels[j]].to_numpy(float)
            c, r = stats.cosine(x, y), stats.correlation(x, y, "spearman")
            cos[i, j] = cos[j, i] = c
            rho[i, j] = rho[j, i] = r
            c_lo, c_hi = _interval(x, y, "cosine", seed + 7919 * i + j, n_boot)
            r_lo, r_hi = _interval(x, y, "spearman", seed + 7919 * i + j, n_boot)
            rows.append(
                {
                    "run_a": labels[i],
                    "run_b": labels[j],
                    "n_shared": len(x),
                    "cosine": c,
                    "cosine_ci_low": c_lo,
                    "cosine_ci_high": c_hi,
                    "spearman": r,
                    "spearman_ci_low": r_lo,
                    "spearman_ci_high": r_hi,
                }
            )
    frame = pd.DataFrame(rows, columns=[
        "run_a", "run_b", "n_shared", "cosine", "cosine_ci_low", "cosine_ci_high",
        "spearman", "spearman_ci_low", "spearman_ci_high",
    ])  # fmt: skip
    return (
        pd.DataFrame(cos, index=labels, columns=labels),
        pd.DataFrame(rho, index=labels, columns=labels),
        frame,
    )


def parse_size(value: str) -> float:
    """``135m``, ``1.5b``, ``7e9`` or ``7000000000`` as a number of parameters."""
    m = _SIZE_VALUE.match(str(value))
    if not m:
        raise ComparisonError(f"--size: {value!r} is not a size (e.g. 135m, 1.5b, 7e9)")
    return float(m.group(1)) * SIZE_UNITS.get(m.group(2).lower(), 1.0)


def parse_size_options(items: list[str]) -> dict[str, float]:
    """``NAME=VALUE`` options as {NAME: parameters}."""
    sizes = {}
    for item in items:
        name, sep, value = item.rpartition("=")
        if not sep or not name.strip():
            raise ComparisonError(f"--size {item!r}: expected NAME=VALUE, e.g. smollm2=135m")
        sizes[name.strip()] = parse_size(value)
    return sizes


def run_sizes(
    runs: list[RunData], labels: list[str], given: dict[str, float] | None = None
) -> list[tuple[float | None, str]]:
    """(parameters, where it came from) per run: --size, metrics ``n_params``, model name.

    A ``--size`` key matches a run's label, directory name or model string.
    """
    given = dict(given or {})
    out: list[tuple[float | None, str]] = []
    for run, label in zip(runs, labels, strict=True):
        model = str(run.metrics.get("model") or "")
        hit = next((given.pop(k) for k in (label, run.name, model) if k in given), None)
        if hit is not None:
            out.append((hit, "--size"))
        elif num(run.metrics.get("n_params")) is not None:
            out.append((float(run.metrics["n_params"]), "metrics.json"))
        elif (size := parameters_from_name(model)) is not None:
            out.append((size, "model name"))
        else:
            out.append((None, ""))
    if given:
        known = ", ".join(labels)
        raise ComparisonError(f"--size {next(iter(given))}: matches no run (runs: {known})")
    return out


def metrics_table(
    runs: list[RunData],
    labels: list[str],
    dirs: list[Path],
    sizes: list[tuple[float | None, str]],
    n_shared: int,
) -> pd.DataFrame:
    """One row per run: what was run and its coherence metrics with intervals."""
    rows = []
    for run, label, d, (size, source) in zip(runs, labels, dirs, sizes, strict=True):
        m = run.metrics
        intervals = m.get("intervals") if isinstance(m.get("intervals"), dict) else {}
        base = m.get("baseline_random") if isinstance(m.get("baseline_random"), dict) else {}
        row: dict[str, Any] = {
            "run": label,
            "run_dir": str(d),
            "model": m.get("model"),
            "outcomes_set": m.get("outcomes_set"),
            "mode": m.get("mode"),
            "n_outcomes": len(run.utilities),
            "n_shared": n_shared,
            "n_pairs": m.get("n_pairs"),
            "n_queries": m.get("n_queries"),
            "cost_usd": m.get("cost_usd"),
            "n_params": size,
            "n_params_source": source,
        }
        for key in METRIC_COLUMNS:
            row[key] = num(m.get(key))
            iv = intervals.get(key)
            ok = isinstance(iv, list | tuple) and len(iv) == 2
            row[f"{key}_ci_low"] = num(iv[0]) if ok else None
            row[f"{key}_ci_high"] = num(iv[1]) if ok else None
        row["random_heldout_accuracy"] = num(base.get("heldout_accuracy"))
        for key in ("heldout_log_loss", "completeness", "cycle_log_prob"):
            row[f"random_{key}"] = num(base.get(key))
        truth = m.get("truth") if isinstance(m.get("truth"), dict) else {}
        row["truth_spearman"] = num(truth.get("spearman"))
        rows.append(row)
    return pd.DataFrame(rows)


def categories_table(runs: list[RunData], labels: list[str]) -> pd.DataFrame:
    """Per-category mean utility and coherence of every run (long format)."""
    rows = []
    for run, label in zip(runs, labels, strict=True):
        cats = run.metrics.get("categories")
        cats = cats if isinstance(cats, dict) else {}
        for name, c in cats.items():
            iv = c.get("mean_utility_interval") or [None, None]
            rows.append(
                {
                    "run": label,
                    "category": name,
                    "n_outcomes": c.get("n_outcomes"),
                    "mean_utility": num(c.get("mean_utility")),
                    "mean_utility_ci_low": num(iv[0]),
                    "mean_utility_ci_high": num(iv[1]),
                    "heldout_accuracy": num(c.get("heldout_accuracy")),
                    "completeness": num(c.get("completeness")),
                    "refusal_rate": num(c.get("refusal_rate")),
                }
            )
    return pd.DataFrame(
        rows,
        columns=[
            "run", "category", "n_outcomes", "mean_utility", "mean_utility_ci_low",
            "mean_utility_ci_high", "heldout_accuracy", "completeness", "refusal_rate",
        ],
    )  # fmt: skip


def compare(
    run_dirs: list[str | Path], sizes: dict[str, float] | None = None, seed: int = 0
) -> Comparison:
    """Load, align and compare runs (no files written)."""
    dirs = [Path(d) for d in run_dirs]
    runs = load_runs(dirs)
    labels = run_labels(runs, dirs)
    utilities = align(runs, labels)
    cos, rho, pairs = similarity(utilities, labels, seed=seed)
    sized = run_sizes(runs, labels, sizes)
    metrics = metrics_table(runs, labels, dirs, sized, len(utilities))
    trend = size_trend.size_trend(runs, labels, [s for s, _ in sized], seed=seed)
    return Comparison(
        labels,
        runs,
        dirs,
        utilities,
        metrics,
        cos,
        rho,
        pairs,
        categories_table(runs, labels),
        trend,
    )


def tables(comp: Comparison) -> dict[str, pd.DataFrame]:
    """Every exported table by file stem."""
    return {
        "utilities": comp.utilities,
        "metrics": comp.metrics,
        "cosine_similarity": comp.cosine.rename_axis("run").reset_index(),
        "spearman": comp.spearman.rename_axis("run").reset_index(),
        "run_pairs": comp.pairs,
        "categories": comp.categories,
        "size_trend": comp.trend,
    }


def write_tables(comp: Comparison, out: Path) -> list[Path]:
    """``out/tables/NAME.csv`` and ``NAME.parquet`` for every table."""
    folder = out / "tables"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, frame in tables(comp).items():
        atomic_write(folder / f"{name}.csv", functools.partial(frame.to_csv, index=False))
        # parquet needs one type per column: text columns that mix None and str are fine,
        # object columns that mix numbers and text are written as text
        clean = frame.copy()
        for col in clean.columns:
            if clean[col].dtype == object:
                kinds = {type(v) for v in clean[col] if v is not None}
                if len(kinds) > 1:
                    clean[col] = clean[col].map(lambda v: None if v is None else str(v))
        atomic_write(folder / f"{name}.parquet", functools.partial(clean.to_parquet, index=False))
        written += [folder / f"{name}.csv", folder / f"{name}.parquet"]
    return written


def figures(comp: Comparison) -> dict[str, Any]:
    """Every comparison figure by file stem (``None`` where there is nothing to draw)."""
    return {
        "cosine_heatmap": compare_plots.heatmap(comp.cosine, "Cosine similarity of utilities")
        if len(comp.labels) > 1
        else None,
        "coherence": compare_plots.coherence_chart(comp.metrics),
        "utilities_side_by_side": compare_plots.side_by_side(comp.utilities, comp.labels),
    }


def run_figures(comp: Comparison) -> dict[str, Any]:
    """Each run's own utility, category and calibration figures, as on its run page.

    File stems are ``run-SLUG-utilities`` etc., SLUG from the run's label.
    """
    figs: dict[str, Any] = {}
    for run, label in zip(comp.runs, comp.labels, strict=True):
        slug = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")
        util = run.utilities
        order = util.groupby("category")["mean"].mean().sort_values(ascending=False).index
        colors = plots.category_colors(order)
        figs[f"run-{slug}-utilities"] = plots.utility_chart(util, colors)
        figs[f"run-{slug}-categories"] = plots.category_chart(util, colors)
        figs[f"run-{slug}-calibration"] = calibration_figure(run.pairs)
    return figs


def write_figures(figs: dict[str, Any], out: Path) -> list[Path]:
    """``out/figures/NAME.svg`` and ``NAME.png`` for every figure."""
    folder = out / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, fig in figs.items():
        if fig is None:
            continue
        with plots.styled():
            atomic_write(
                folder / f"{name}.svg",
                functools.partial(
                    fig.savefig, format="svg", metadata={"Date": None}, facecolor="white"
                ),
            )
        atomic_write(folder / f"{name}.png", functools.partial(plots.figure_to_png, fig, dpi=200))
        written += [folder / f"{name}.svg", folder / f"{name}.png"]
    return written


def _rank_columns(comp: Comparison, k: int = 10) -> list[dict[str, Any]]:
    """Each run's top and bottom ``k`` shared outcomes, for the side-by-side table."""
    cols = []
    for label in comp.labels:
        df = comp.utilities.dropna(subset=[label]).sort_values(label, ascending=False)

        def items(part: pd.DataFrame, lab: str = label) -> list[dict[str, str]]:
            return [
                {"outcome": str(r["outcome"]), "mean": fmt(r[lab], 2)} for _, r in part.iterrows()
            ]

        flat = bool(df[label].nunique() <= 1)
        if flat or len(df) <= 2 * k:
            cols.append({"label": label, "top": items(df), "bottom": [], "flat": flat})
        else:
            top, bottom = items(df.head(k)), items(df.tail(k))
            cols.append({"label": label, "top": top, "bottom": bottom, "flat": False})
    return cols


def _metric_rows(comp: Comparison) -> list[dict[str, str]]:
    rows = []
    for _, r in comp.metrics.iterrows():
        rows.append(
            {
                "run": r["run"],
                "dir": r["run_dir"],
                "model": str(r["model"] or "—"),
                "outcomes": fmt_int(r["n_outcomes"]),
                "accuracy": fmt(r["heldout_accuracy"]),
                "accuracy_ci": fmt_interval(
                    r["heldout_accuracy_ci_low"], r["heldout_accuracy_ci_high"]
                ),
                "random": fmt(r["random_heldout_accuracy"]),
                "log_loss": fmt(r["heldout_log_loss"]),
                "log_loss_ci": _ci(r, "heldout_log_loss"),
                "completeness": fmt(r["completeness"]),
                "completeness_ci": _ci(r, "completeness"),
                "cycle": fmt(r["cycle_log_prob"]),
                "cycle_ci": _ci(r, "cycle_log_prob"),
                "random_log_loss": fmt(r["random_heldout_log_loss"]),
                "random_completeness": fmt(r["random_completeness"]),
                "random_cycle": fmt(r["random_cycle_log_prob"]),
                "position_bias": fmt(r["position_bias"]),
                "refusal_rate": fmt(r["refusal_rate"]),
                "size": _fmt_size(r["n_params"]),
                "size_source": r["n_params_source"],
            }
        )
    return rows


def _ci(row: pd.Series, key: str) -> str:
    return fmt_interval(row[f"{key}_ci_low"], row[f"{key}_ci_high"])


TREND_NAMES = {
    "heldout_accuracy": "held-out accuracy",
    "heldout_log_loss": "held-out log-loss",
    "completeness": "completeness",
}


def _trend_rows(comp: Comparison) -> list[dict[str, str]]:
    return [
        {
            "step": f"{r['smaller']} → {r['larger']}",
            "sizes": f"{_fmt_size(r['smaller_params'])} → {_fmt_size(r['larger_params'])}",
            "metric": TREND_NAMES.get(r["metric"], r["metric"]),
            "n": fmt_int(r["n_heldout_shared"]),
            "scores": f"{fmt(r['smaller_value'])} → {fmt(r['larger_value'])}",
            "difference": fmt(r["difference"]),
            "ci": fmt_interval(r["ci_low"], r["ci_high"]),
        }
        for _, r in comp.trend.iterrows()
    ]


def _fmt_size(value: Any) -> str:
    v = num(value)
    return "—" if v is None else compare_plots.format_size(v)


def _pair_rows(comp: Comparison) -> list[dict[str, str]]:
    return [
        {
            "a": r["run_a"],
            "b": r["run_b"],
            "n": fmt_int(r["n_shared"]),
            "cosine": fmt(r["cosine"]),
            "cosine_ci": fmt_interval(r["cosine_ci_low"], r["cosine_ci_high"]),
            "spearman": fmt(r["spearman"]),
            "spearman_ci": fmt_interval(r["spearman_ci_low"], r["spearman_ci_high"]),
        }
        for _, r in comp.pairs.iterrows()
    ]


def convergence_reading(comp: Comparison) -> str:
    """One sentence on how alike the runs' utilities are."""
    if comp.pairs.empty:
        return "One run only: name two or more run directories to compare their utilities."
    pairs = comp.pairs.dropna(subset=["cosine"])
    if pairs.empty:
        return "No pair of runs has a defined similarity (a run's utilities are all equal)."
    best = pairs.loc[pairs["cosine"].idxmax()]
    worst = pairs.loc[pairs["cosine"].idxmin()]
    mean = float(pairs["cosine"].mean())
    text = (
        f"Across {len(pairs)} pair(s) of runs on {len(comp.utilities)} shared outcomes, "
        f"the mean cosine similarity of utilities is {mean:.2f}; most alike: "
        f"{best['run_a']} and {best['run_b']} ({best['cosine']:.2f})"
    )
    if len(pairs) > 1:
        text += f"; least alike: {worst['run_a']} and {worst['run_b']} ({worst['cosine']:.2f})"
    return text + ". 1 = identical ordering and spacing, 0 = unrelated, −1 = reversed."


def _undefined_note(comp: Comparison) -> str:
    """Why some similarities show a dash."""
    flat = [lab for lab in comp.labels if comp.utilities[lab].nunique() <= 1]
    if not flat:
        return ""
    return (
        f"— : undefined, because every utility of {', '.join(flat)} is equal "
        "(a vector with no spread has no direction)."
    )


RUN_MARKERS = ("run_config.json", "metrics.json")  # files that make a directory a run's


def check_comparison_out(folder: Path, overwrite: bool = False) -> None:
    """Refuse to write a comparison into a run directory, whose report.html it would replace."""
    marker = next((m for m in RUN_MARKERS if (folder / m).is_file()), None)
    if marker is None or overwrite:
        return
    raise ComparisonError(
        f"--out {folder} is a run directory (it holds {marker}): the comparison would "
        "replace that run's report.html; choose another --out (default runs/compare), "
        "or add --overwrite to replace it"
    )


def build_comparison(
    run_dirs: list[str | Path],
    out: str | Path,
    sizes: dict[str, float] | None = None,
    seed: int = 0,
    figure_files: bool = True,
    overwrite: bool = False,
) -> tuple[Comparison, Path]:
    """Compare runs and write ``out/report.html``, ``out/tables/`` and ``out/figures/``.

    ``figure_files=False`` skips ``out/figures/`` (the page carries its own figures).
    ``out`` must not be a run directory (its own report.html would be replaced by the
    comparison) unless ``overwrite=True``.
    """
    folder = Path(out)
    check_comparison_out(folder, overwrite)
    comp = compare(run_dirs, sizes, seed)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ComparisonError(f"cannot write to {folder}: {exc.strerror or exc}") from None
    write_tables(comp, folder)
    figs = figures(comp)
    if figure_files:
        write_figures(figs | run_figures(comp), folder)
    svg = {k: (None if f is None else plots.figure_to_svg(f, f"{k[:3]}-")) for k, f in figs.items()}
    sized = comp.metrics["n_params"].notna().all() and comp.metrics["n_params"].nunique() > 1
    context = {
        "title": " vs ".join(comp.labels) if len(comp.labels) <= 4 else f"{len(comp.labels)} runs",
        "labels": comp.labels,
        "n_runs": len(comp.labels),
        "n_shared": len(comp.utilities),
        "run_rows": _metric_rows(comp),
        "pair_rows": _pair_rows(comp),
        "reading": convergence_reading(comp),
        "undefined_note": _undefined_note(comp),
        "heatmap_svg": svg["cosine_heatmap"],
        "coherence_svg": svg["coherence"],
        "coherence_by_size": bool(sized),
        "trend_rows": _trend_rows(comp),
        "side_svg": svg["utilities_side_by_side"],
        "side_truncated": len(comp.utilities.dropna(subset=comp.labels)) > 50,
        "rank_columns": _rank_columns(comp),
        "tables": list(tables(comp)),
        "version": _version(),
    }
    path = write_text(
        folder / "report.html", _env().get_template("compare.html.j2").render(**context)
    )
    return comp, path
