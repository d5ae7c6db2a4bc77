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
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    ApiKeyEnvOption,
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
    config_choices,
)
from valuescope.control.errors import ControlError
from valuescope.interrupts import interruptible
from valuescope.runcore.rundir import prepare_out_dir, run_dir_lock, to_jsonable
from valuescope.terminal import BarProgress, out_console, print_files, progress_bar

control_app = typer.Typer(
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
    model: str = typer.Argument("sim/citizen", help="backend that role-plays each citizen"),
    outcomes: str = typer.Option("policies", help="policies (default), a built-in set, or a file"),
    out: Path = typer.Option(Path("runs/assembly"), help="assembly directory to write"),
    citizens: int = typer.Option(24, help="citizens sampled from the census marginals"),
    pairs: int = typer.Option(
        480, help="training + held-out pairs (outside the held-out topic; 120 held out)"
    ),
    rounds: int = typer.Option(2, help="voting rounds: 1 = no deliberation"),
    heldout_fraction: float = typer.Option(0.25, help="share of the pairs held out of training"),
    heldout_topic: str = typer.Option(
        "auto", help="topic kept out of training: auto, none, or a name"
    ),
    topic_pairs: int = typer.Option(15, help="pairs asked within the held-out topic"),
    mode: str = typer.Option(
        "auto",
        help="logprob, sample, or auto (logprob when offered)",
        **choice(config_choices("mode")),
    ),
    samples: int = typer.Option(5, help="answers per order in sample mode"),
    temperature: float = typer.Option(1.0, help="sampling temperature in sample mode"),
    template: str = typer.Option("default", help="forced-choice prompt template"),
    deliberation: str = typer.Option(
        "arguments",
        help="what a deliberation round shows: arguments (members' reasons and the vote "
        "share) or votes (the vote share only)",
        **choice(["arguments", "votes"]),
    ),
    arguments: int = typer.Option(4, help="arguments shown per pair in each deliberation round"),
    compare: bool = typer.Option(
        True, "--compare/--no-compare", help="also run the other deliberation mode and compare"
    ),
    seed: int = typer.Option(0, help="seed for citizens, pairs and synthetic agents"),
    base_url: BaseUrlOption = None,
    api_key_env: ApiKeyEnvOption = None,
    concurrency: ConcurrencyOption = DEFAULT_CONCURRENCY,
    timeout: TimeoutOption = DEFAULT_TIMEOUT,
    max_retries: MaxRetriesOption = DEFAULT_MAX_RETRIES,
    rate_limit: RateLimitOption = None,
    engine: EngineOption = "local",
    ray_address: RayAddressOption = None,
    ray_workers: RayWorkersOption = None,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Sample citizens, let them vote and deliberate on pairs, write the assembly directory."""
    from valuescope.control.assembly_run import AssembleConfig, assemble

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
    model: str = typer.Argument(..., help="hf/<dir-or-file.gguf> model to fine-tune"),
    assembly: Path = typer.Option(Path("runs/assembly"), help="assembly directory"),
    out: Path = typer.Option(Path("runs/control"), help="training directory (resumes if present)"),
    epochs: int = typer.Option(3, help="passes over the training prompts"),
    max_steps: int | None = typer.Option(None, help="stop after this many optimizer steps"),
    batch_size: int = typer.Option(8, help="prompts per optimizer step"),
    lr: float = typer.Option(5e-4, help="AdamW learning rate"),
    lora_rank: int = typer.Option(8, help="LoRA rank"),
    lora_alpha: float = typer.Option(16.0, help="LoRA scale numerator (alpha / rank)"),
    lora_layers: int | None = typer.Option(
        None, help="LoRA on the last N transformer layers only (default: all; faster backward)"
    ),
    full: bool = typer.Option(False, "--full", help="train every weight instead of LoRA"),
    max_length: int = typer.Option(512, help="longest prompt allowed, in tokens"),
    save_every: int = typer.Option(20, help="checkpoint every this many steps"),
    seed: int = typer.Option(0, help="seed for LoRA init and data order"),
    device: str = typer.Option("auto", help="auto, cpu or cuda"),
    threads: int | None = typer.Option(None, help="torch CPU threads"),
    memory_limit_gb: float | None = typer.Option(
        None, help="memory to plan for instead of what is free now"
    ),
    as_json: JsonOption = False,
    quiet: QuietOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Fine-tune MODEL so its answers match the assembly's vote shares (soft labels)."""
    from valuescope.control.train import TrainConfig, train

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
    trained: Path = typer.Argument(Path("runs/control"), help="training directory"),
    assembly: Path | None = typer.Option(
        None, help="assembly directory (default: the trained one)"
    ),
    out: Path | None = typer.Option(None, help="where to write (default: TRAINED/evaluation)"),
    positions: int = typer.Option(12, help="assembly positions in the prompting baseline"),
    batch_size: int = typer.Option(8, help="prompts per forward pass"),
    bootstrap: int = typer.Option(500, help="bootstrap replicates for intervals"),
    seed: int = typer.Option(0, help="bootstrap seed"),
    threads: int | None = typer.Option(None, help="torch CPU threads"),
    capability: Path | None = typer.Option(None, help="text file for the perplexity check"),
    device: str = typer.Option("auto", help="auto, cpu or cuda"),
    as_json: JsonOption = False,
    quiet: QuietOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Agreement with the assembly, lean and perplexity: before, prompted, after training."""
    from valuescope.control.finetune_evaluation import EvaluateConfig, evaluate_control

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
