"""`experiment` and `compare`: an analysis of the paper, or several runs side by side."""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from valuescope.api.measure import SettingError, progress_of, run_config
from valuescope.api.results import ComparisonRun, ExperimentRun, Run
from valuescope.errors import ValuescopeError, did_you_mean

# Keyword arguments of `experiment` that are the command's own options (`--run` is `runs`).
CONTEXT_OPTIONS = ("out", "seed", "quick", "judge", "runs", "progress")
# Run settings an analysis applies to every utility measurement it makes (as the CLI).
RUN_OPTIONS = (
    "mode",
    "samples",
    "base_url",
    "api_key_env",
    "concurrency",
    "timeout",
    "max_retries",
    "rate_limit",
    "engine",
    "ray_address",
    "ray_workers",
)


def experiment(name: str, model: str = "", **params: Any) -> ExperimentRun:
    """Run the analysis `name` on `model`, as `valuescope experiment NAME MODEL` does.

    Parameters
    ----------
    name : str
        An analysis (`valuescope experiment --list`: "time-discounting", "convergence", ...).
    model : str
        The model string (default: the embedded default model).
    **params
        The command's options (`out`, `seed`, `quick`, `judge`, `runs`: a list of run
        directories or Runs, for convergence), the run settings every measurement uses
        (`mode`, `samples`, `base_url`, `concurrency`, `engine`, ...), and the analysis's
        own `--param` settings (`delays=["1 month", "2 years"]`: a list is joined with
        commas). A name that is none of these is refused, naming the closest ones. Without
        `out`, the results go to a new temporary directory (`valuescope-experiment-*`).

    Returns
    -------
    ExperimentRun
        The result (NAME.json) with its headline figures, tables and sub-runs.
    """
    from valuescope.config import DEFAULT_MODEL
    from valuescope.experiments import get_experiment, write_result
    from valuescope.experiments.params import check_params
    from valuescope.report import build_report

    analysis = get_experiment(name)
    model = model or DEFAULT_MODEL
    _check_names(analysis.name, params)
    context = {k: params.pop(k) for k in CONTEXT_OPTIONS if k in params}
    options = {k: params.pop(k) for k in RUN_OPTIONS if k in params}
    texts = check_params(analysis.name, {k: _param_text(k, v) for k, v in params.items()})
    if options:  # checked as `valuescope run` checks them, one line naming the bad one
        config = run_config(model, "demo", options)
        options = config.model_dump(include=set(options))
    out = context.get("out") or tempfile.mkdtemp(prefix="valuescope-experiment-")
    with progress_of(context.get("progress")) as progress:
        ctx = _context(model, Path(out), context, options, texts, progress)
        result = analysis.run(ctx)
    write_result(ctx, analysis, result)
    try:
        build_report(ctx.out)
    except ValuescopeError as exc:  # the result is written; the page is a convenience
        warnings.warn(f"report not written: {exc}", stacklevel=2)
    return ExperimentRun(ctx.out, analysis.name)


def _context(
    model: str,
    out: Path,
    context: Mapping[str, Any],
    options: dict[str, Any],
    params: dict[str, str],
    progress: Any,
) -> Any:
    """The ExperimentContext the command line would build from these options."""
    from valuescope.experiments import ExperimentContext
    from valuescope.runcore.rundir import prepare_out_dir

    return ExperimentContext(
        model=model,
        out=prepare_out_dir(out),
        seed=int(context.get("seed", 0)),
        quick=bool(context.get("quick", False)),
        run_options=options,
        params=params,
        run_dirs=[_run_dir(r) for r in context.get("runs") or []],
        judge=context.get("judge"),
        progress=progress,
    )


def compare(
    runs: Sequence[str | Path | Run],
    out: str | Path | None = None,
    *,
    sizes: Mapping[str, float] | None = None,
    seed: int = 0,
    figures: bool = False,
    overwrite: bool = False,
) -> ComparisonRun:
    """Compare runs as `valuescope report A B --out DIR` does; the comparison's tables.

    `runs` are run directories or Runs. The page and its tables (tables/*.csv|parquet)
    are written to `out` (default: a new temporary directory `valuescope-compare-*`);
    `figures=True` also writes figures/*.svg|png. `sizes` maps a run's model to its
    parameter count (for coherence against size).
    """
    from valuescope.report.compare import build_comparison

    if isinstance(runs, str | Path | Run) or not isinstance(runs, Sequence):
        raise SettingError(
            f"runs: expected a list of run directories or Runs, got {type(runs).__name__}"
        )
    dirs = [_run_dir(r) for r in runs]
    folder = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="valuescope-compare-"))
    comparison, path = build_comparison(
        dirs,
        folder,
        dict(sizes) if sizes else None,
        seed,
        figure_files=figures,
        overwrite=overwrite,
    )
    return ComparisonRun(comparison, path)


def _check_names(name: str, params: Mapping[str, Any]) -> None:
    """Refuse a keyword that is neither an option nor one of the analysis's parameters."""
    from valuescope.experiments.params import PARAMS, known_keys

    model = PARAMS.get(name)
    if model is None:  # an analysis without a parameter model takes any name
        return
    options = [*CONTEXT_OPTIONS, *RUN_OPTIONS]
    own = list(model.model_fields)
    for key in params:
        if key in options or key in own or (model.prefixed and key.startswith(model.prefixed)):
            continue
        hint = did_you_mean(key, [*options, *own])
        raise SettingError(
            f"valuescope.experiment: unknown setting {key!r}; {hint}options: "
            f"{', '.join(options)}; {name}'s parameters: {', '.join(known_keys(model))}"
        )


def _run_dir(run: object) -> Path:
    if isinstance(run, Run):
        return run.out
    if isinstance(run, str | Path):
        return Path(run)
    raise SettingError(f"runs: expected run directories or Runs, got {type(run).__name__}")


def _param_text(key: str, value: object) -> str:
    """An analysis setting as `--param key=value` gives it: text (lists joined by commas)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    if isinstance(value, str | int | float):
        return str(value)
    raise SettingError(f"{key}={value!r}: an analysis setting is a number, text or a list")
