"""`valuescope control assemble|train|evaluate`: the typer sub-app (parse, call, print)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import typer
from rich.table import Table

from valuescope.cli_options import (
    DEFAULT_CONCURRENCY,
    DEFAULT_ENGINE,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
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
    default_of,
    setting,
)
from valuescope.control.errors import ControlError
from valuescope.control.settings import AssembleConfig, EvaluateConfig, TrainConfig
from valuescope.interrupts import interruptible
from valuescope.runcore.rundir import prepare_out_dir, run_dir_lock, to_jsonable
from valuescope.terminal import BarProgress, out_console, print_files, progress_bar

control_app = App(
    no_args_is_help=True,
    help="Align a model's utilities with a simulated citizens' assembly: sample citizens, "
    "let them vote and deliberate on pairs, fine-tune the model toward their choices.",
)


def _fmt(item, digits: int = 3) -> str:
    if isinstance(item, dict):
        value, lo, hi = item.get("value"), item.get("ci_low"), item.get("ci_high")
        if value is None:
            return "—"
        if lo is None:
            return f"{value:.{digits}f}"
        return f"{value:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"
    if item is None:
        return "—"
    return f"{item:.{digits}f}" if isinstance(item, float) else str(item)


def _check_verbosity(quiet: bool, verbose: bool) -> None:
    if quiet and verbose:
        raise ControlError("--quiet and --verbose contradict each other; choose one")


@contextlib.contextmanager
def _working_in(out: Path, **interrupt: Callable[[Path], str]) -> Iterator[None]:
    """Lock `out` for this command (a second one there fails at once, as for `run`) and
    turn Ctrl-C / SIGTERM into one line saying what was kept."""
    with run_dir_lock(prepare_out_dir(out)), interruptible(out, **interrupt):
        yield


@contextlib.contextmanager
def _interruptible_only(out: Path, **interrupt: Callable[[Path], str]) -> Iterator[None]:
    with interruptible(out, **interrupt):
        yield


def _checkpoint_line(out: Path) -> str:
    return f"training in {out} continues from its last checkpoint"


def _nothing_line(out: Path) -> str:
    return f"the evaluation in {out} was not finished"


@control_app.command("assemble")
def assemble_command(
    model: str = typer.Argument(
        default_of(AssembleConfig, "model"), help=AssembleConfig.model_fields["model"].description
    ),
    outcomes: str = setting(AssembleConfig, "outcomes"),
    out: Path = setting(AssembleConfig, "out"),
    citizens: int = setting(AssembleConfig, "citizens"),
    pairs: int = setting(AssembleConfig, "pairs"),
    rounds: int = setting(AssembleConfig, "rounds"),
    heldout_fraction: float = setting(AssembleConfig, "heldout_fraction"),
    heldout_topic: str = setting(AssembleConfig, "heldout_topic"),
    topic_pairs: int = setting(AssembleConfig, "topic_pairs"),
    mode: str = setting(AssembleConfig, "mode"),
    samples: int = setting(AssembleConfig, "samples"),
    temperature: float = setting(AssembleConfig, "temperature"),
    template: str = setting(AssembleConfig, "template"),
    deliberation: str = setting(AssembleConfig, "deliberation"),
    arguments: int = setting(AssembleConfig, "arguments"),
    compare: bool = setting(AssembleConfig, "compare", "--compare/--no-compare"),
    seed: int = setting(AssembleConfig, "seed"),
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
    """Sample citizens, let them vote and deliberate on pairs, write the assembly directory."""
    from valuescope.control.assembly_run import assemble

    _check_verbosity(quiet, verbose)
    transport = Transport(base_url, api_key_env, concurrency, timeout, max_retries, rate_limit)

    config = AssembleConfig(
        model=model,
        out=out,
        outcomes=outcomes,
        citizens=citizens,
        pairs=pairs,
        rounds=rounds,
        heldout_fraction=heldout_fraction,
        heldout_topic=heldout_topic,
        topic_pairs=topic_pairs,
        mode=mode,
        samples=samples,
        temperature=temperature,
        template=template,
        deliberation=deliberation,
        arguments=arguments,
        compare=compare,
        seed=seed,
        engine=engine,
        ray_address=ray_address,
        ray_workers=ray_workers,
        **transport.settings(),
    )
    # `assemble` takes the directory's lock itself (the run path does)
    with _interruptible_only(out), progress_bar(quiet or as_json) as bar:
        summary = assemble(config, progress=BarProgress(bar))
    if verbose:
        print_files(out)
    if as_json:
        print(json.dumps(to_jsonable(summary), indent=2))
        return
    if quiet:
        return
    n = summary["n_pairs"]
    out_console.print(
        f"{summary['n_citizens']} citizens, pairs: {n['train']} train, {n['heldout']} held out, "
        f"{n['topic']} in held-out topic {summary['heldout_topic'] or '—'}; "
        f"{summary['n_queries']} answers ({summary['n_queries_new']} new)",
        highlight=False,
    )
    table = Table(title="vote shares by round")
    for col in ("round", "mean majority", "unanimous pairs", "votes changed", "toward majority"):
        table.add_column(col, justify="right")
    moves = {d["round"]: d for d in summary["deliberation"]}
    for r in summary["rounds"]:
        d = moves.get(r["round"], {})
        table.add_row(
            str(r["round"]),
            _fmt(r["mean_majority"]),
            _fmt(r["unanimous_pairs"]),
            _fmt(d.get("changed")),
            _fmt(d.get("toward_majority")),
        )
    out_console.print(table)
    _print_modes(summary["modes"], summary["settings"]["deliberation"])
    out_console.print(f"wrote {out}/ (labels.csv, votes.csv, citizens.csv, assembly.json)")


def _print_modes(modes: dict, used: str) -> None:
    """Unanimity before/after deliberation per mode and how the two modes agree."""
    table = Table(title=f"deliberation modes (labels from: {used})")
    for col in ("mode", "unanimous first", "unanimous final", "change", "majority final"):
        table.add_column(col, justify="right")
    for mode in ("arguments", "votes"):
        if mode in modes:
            m = modes[mode]
            table.add_row(
                mode,
                *(_fmt(m[k]) for k in ("unanimous_first", "unanimous_final", "unanimous_change")),
                _fmt(m["majority_final"]),
            )
    out_console.print(table)
    if "final_majorities_agree" in modes:
        out_console.print(
            "arguments minus votes, change in unanimous pairs: "
            f"{_fmt(modes['unanimous_change_arguments_minus_votes'])}; final majorities "
            f"agree on {_fmt(modes['final_majorities_agree'])} of pairs",
            highlight=False,
        )


@control_app.command("train")
def train_command(
    model: str = typer.Argument(..., help=TrainConfig.model_fields["model"].description),
    assembly: Path = setting(TrainConfig, "assembly"),
    out: Path = setting(TrainConfig, "out"),
    epochs: int = setting(TrainConfig, "epochs"),
    max_steps: int | None = setting(TrainConfig, "max_steps"),
    batch_size: int = setting(TrainConfig, "batch_size"),
    lr: float = setting(TrainConfig, "lr"),
    lora_rank: int = setting(TrainConfig, "lora_rank"),
    lora_alpha: float = setting(TrainConfig, "lora_alpha"),
    lora_layers: int | None = setting(TrainConfig, "lora_layers"),
    full: bool = setting(TrainConfig, "full", "--full"),
    max_length: int = setting(TrainConfig, "max_length"),
    save_every: int = setting(TrainConfig, "save_every"),
    seed: int = setting(TrainConfig, "seed"),
    device: str = setting(TrainConfig, "device"),
    threads: int | None = setting(TrainConfig, "threads"),
    memory_limit_gb: float | None = setting(TrainConfig, "memory_limit_gb"),
    as_json: JsonOption = False,
    quiet: QuietOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Fine-tune MODEL so its answers match the assembly's vote shares (soft labels)."""
    from valuescope.control.train import train

    _check_verbosity(quiet, verbose)

    config = TrainConfig(
        model=model,
        assembly=assembly,
        out=out,
        epochs=epochs,
        max_steps=max_steps,
        batch_size=batch_size,
        lr=lr,
        lora_rank=lora_rank,
        lora_alpha=lora_alpha,
        lora_layers=lora_layers,
        full=full,
        max_length=max_length,
        save_every=save_every,
        seed=seed,
        device=device,
        threads=threads,
        memory_limit_gb=memory_limit_gb,
    )
    with _working_in(out, saved=_checkpoint_line), progress_bar(quiet or as_json) as bar:
        summary = train(config, progress=BarProgress(bar))
    if verbose:
        print_files(out)
    if as_json:
        print(json.dumps(to_jsonable(summary), indent=2))
    elif not quiet:
        resumed = summary["resumed_from_step"]
        out_console.print(
            f"{summary['method']} on {summary['device']}: {summary['steps']} steps over "
            f"{summary['n_examples']} prompts"
            + (f" (resumed from step {resumed})" if resumed else "")
            + f"; batch loss {_fmt(summary['first_loss'])} -> {_fmt(summary['last_loss'])}, "
            f"batch KL {_fmt(summary['first_kl'])} -> {_fmt(summary['last_kl'])}; "
            f"{summary['seconds']:.0f} s",
            highlight=False,
        )
        out_console.print(f"wrote {out}/ ({summary['output']}/, train_log.csv, train.json)")


@control_app.command("evaluate")
def evaluate_command(
    trained: Path = typer.Argument(
        default_of(EvaluateConfig, "trained"),
        help=EvaluateConfig.model_fields["trained"].description,
    ),
    assembly: Path | None = setting(EvaluateConfig, "assembly"),
    out: Path | None = setting(EvaluateConfig, "out"),
    positions: int = setting(EvaluateConfig, "positions"),
    batch_size: int = setting(EvaluateConfig, "batch_size"),
    bootstrap: int = setting(EvaluateConfig, "bootstrap"),
    seed: int = setting(EvaluateConfig, "seed"),
    threads: int | None = setting(EvaluateConfig, "threads"),
    capability: Path | None = setting(EvaluateConfig, "capability"),
    device: str = setting(EvaluateConfig, "device"),
    as_json: JsonOption = False,
    quiet: QuietOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Agreement with the assembly, lean and perplexity: before, prompted, after training."""
    from valuescope.control.finetune_evaluation import evaluate_control

    _check_verbosity(quiet, verbose)

    config = EvaluateConfig(
        trained=trained,
        assembly=assembly,
        out=out,
        positions=positions,
        batch_size=batch_size,
        bootstrap=bootstrap,
        seed=seed,
        threads=threads,
        capability=capability,
        device=device,
    )
    where = out or trained / "evaluation"
    # a missing training directory is evaluate_control's error to report: create nothing
    guard = _working_in if trained.is_dir() else _interruptible_only
    with guard(where, saved=_nothing_line), progress_bar(quiet or as_json) as bar:
        result = evaluate_control(config, progress=BarProgress(bar))
    if verbose:
        print_files(where)
    if as_json:
        print(json.dumps(to_jsonable(result), indent=2))
        return
    if quiet:
        return
    table = Table(title=f"agreement with the assembly: {result['model']}")
    for col in ("split", "pairs", "figure", "before", "prompted", "after"):
        table.add_column(col, justify="right")
    for split, entry in result["agreement"].items():
        for metric in ("accuracy", "kl"):
            table.add_row(
                split,
                str(entry["n_pairs"]),
                metric,
                *(_fmt(entry[f"{metric}_{c}"]) for c in ("before", "prompted", "after")),
            )
    out_console.print(table)
    lean = result["lean"]
    if "note" not in lean:
        out_console.print(
            "lean (correlation of utilities with coded right-left lean): "
            + ", ".join(
                f"{k} {_fmt(v) if 'value' in v else v.get('note')}" for k, v in lean.items()
            ),
            highlight=False,
        )
    cap = result["capability"]
    out_console.print(
        f"held-out text perplexity {cap['perplexity_before']:.2f} -> {cap['perplexity_after']:.2f} "
        f"(change in nats/token {_fmt(cap['nll_change_per_token'])})",
        highlight=False,
    )
    mc = result["capability_mc"]
    out_console.print(
        f"multiple-choice capability ({mc['n_questions']} questions, chance 0.25): "
        f"{_fmt(mc['accuracy_before'])} -> {_fmt(mc['accuracy_after'])} "
        f"(change {_fmt(mc['accuracy_change'])})",
        highlight=False,
    )
    out_console.print(f"wrote {where}/ (evaluation.json, answers.csv)")
