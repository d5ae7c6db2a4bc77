"""The main job: outcomes -> pair design -> elicitation -> fit -> metrics -> run directory."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import pearsonr, spearmanr

from valuescope import __version__
from valuescope.config import RunConfig
from valuescope.design import (
    batch_size,
    check_budget,
    decode,
    default_budget,
    heldout_size,
    n_all_pairs,
    pair_codes,
    sample_new_codes,
    select_batch,
    split_start,
)
from valuescope.design.information import estimated_spearman
from valuescope.elicit import (
    ElicitSettings,
    PairAnswers,
    ResponseCache,
    elicit_pairs,
    get_template,
    merge_answers,
    pool_templates,
)
from valuescope.engine import check_engine, make_engine
from valuescope.errors import ValuescopeError
from valuescope.evaluate import evaluate, random_baseline
from valuescope.fit import (
    coin_completeness,
    fit_thurstonian,
)
from valuescope.models import get_backend
from valuescope.outcomes import OutcomeSet, load_outcomes
from valuescope.rundir import prepare_out_dir, run_dir_lock, write_csv, write_json


class Progress:
    """Receives progress events; the CLI shows a bar, the Python API ignores them."""

    def start(self, total: int, description: str) -> None: ...

    def advance(self, n: int) -> None: ...

    def cost(self, tokens_in: int, tokens_out: int, usd: float | None) -> None:
        """Tokens (and USD, where the backend knows its prices) of answers just received."""


@dataclass
class RunResult:
    """What a run produced: the tables it wrote and its metrics."""

    out: Path
    utilities: pd.DataFrame
    pairs: pd.DataFrame
    metrics: dict


def resolve_mode(config: RunConfig, supports_logprobs: bool) -> str:
    """'auto' picks logprob mode where the backend offers it."""
    if config.mode == "auto":
        return "logprob" if supports_logprobs else "sample"
    if config.mode == "logprob" and not supports_logprobs:
        raise ValuescopeError(
            f"model {config.model} does not offer log-probabilities; use --mode sample"
        )
    return config.mode


def plan_budget(config: RunConfig, n: int, n_heldout: int) -> int:
    """Training pairs the run will ask."""
    if config.design == "full":
        return n_all_pairs(n) - n_heldout
    return check_budget(n, config.budget or default_budget(n), n_heldout)


@dataclass
class RunPlan:
    """A validated run: everything is checked before the first question is asked."""

    config: RunConfig
    outcomes: OutcomeSet
    backend: object
    mode: str
    templates: list
    out: Path
    budget: int
    settings: ElicitSettings

    @property
    def n_queries(self) -> int:
        n_heldout = heldout_size(
            len(self.outcomes), self.config.heldout_fraction, self.config.max_heldout
        )
        per_pair = 2 * (self.settings.samples if self.mode == "sample" else 1)
        per_pair *= len(self.templates)
        return (self.budget + n_heldout) * per_pair


def backend_options(config: RunConfig) -> dict:
    """Options every backend factory receives (factories ignore what they do not use)."""
    return {
        "seed": config.seed,
        "base_url": config.base_url,
        "concurrency": config.concurrency,
        "timeout": config.timeout,
        "max_retries": config.max_retries,
        "rate_limit": config.rate_limit,
    }


def elicit_settings(config: RunConfig, mode: str) -> ElicitSettings:
    """How each pair is asked, from the run settings."""
    return ElicitSettings(
        mode=mode,
        samples=config.samples,
        temperature=config.temperature,
        refusals=config.refusals,
        batch_size=config.batch_size,
        persona=config.persona,
    )


def check_templates(templates: list, mode: str) -> None:
    """Reasoning templates answer after free text: they need sample mode."""
    for t in templates:
        if t.reasoning and mode != "sample":
            raise ValuescopeError(
                f"template {t.name!r} answers after its reasoning; use --mode sample"
            )


def plan(config: RunConfig) -> RunPlan:
    """Validate settings, outcomes, model, budget and output directory (no model calls)."""
    check_engine(config.engine)
    outcomes = load_outcomes(config.outcomes)
    backend = get_backend(config.model, **backend_options(config))
    mode = resolve_mode(config, backend.supports_logprobs)
    templates = [get_template(t.strip()) for t in config.template.split(",") if t.strip()]
    if not templates:
        raise ValuescopeError("--template: name at least one template")
    check_templates(templates, mode)
    n = len(outcomes)
    budget = plan_budget(config, n, heldout_size(n, config.heldout_fraction, config.max_heldout))
    out = prepare_out_dir(Path(config.out))
    ResponseCache(out / "responses.sqlite").close()  # a corrupt cache fails here, not midway
    settings = elicit_settings(config, mode)
    return RunPlan(config, outcomes, backend, mode, templates, out, budget, settings)


def run(config: RunConfig | RunPlan, progress: Progress | None = None) -> RunResult:
    """Run the whole pipeline and write the run directory.

    The run directory is locked while the run lasts: a second run on the same directory
    fails at once instead of mixing its files with this one's (see `run_dir_lock`).
    """
    t0 = time.perf_counter()
    the_plan = config if isinstance(config, RunPlan) else plan(config)
    with run_dir_lock(the_plan.out):
        return _run(the_plan, progress or Progress(), t0)


def _run(the_plan: RunPlan, progress: Progress, t0: float) -> RunResult:
    config, outcomes, backend = the_plan.config, the_plan.outcomes, the_plan.backend
    mode, templates, out, budget = the_plan.mode, the_plan.templates, the_plan.out, the_plan.budget
    settings = the_plan.settings
    write_json(out / "run_config.json", config.model_dump(mode="json"))

    n = len(outcomes)
    rng = np.random.default_rng(config.seed)
    n_heldout = heldout_size(n, config.heldout_fraction, config.max_heldout)
    start, heldout = split_start(n, rng, n_heldout)
    progress.start(the_plan.n_queries, f"asking {backend.name.split('#')[0]}")

    engine = make_engine(
        config.engine,
        config.model,
        backend_options(config),
        ray_address=config.ray_address,
        ray_workers=config.ray_workers,
    )
    with ResponseCache(out / "responses.sqlite") as cache:

        def ask(pairs: np.ndarray) -> PairAnswers:
            parts = [
                elicit_pairs(
                    backend, outcomes.texts, pairs, t, settings, cache, progress.advance, engine
                )
                for t in templates
            ]
            _note_cost(progress, backend, parts)
            return pool_templates(parts, settings.refusals)

        try:
            held = ask(heldout) if len(heldout) else None
            train, stopping = _elicit_design(config, n, budget, start, heldout, rng, ask)
        finally:
            engine.close()

    fit_t0 = time.perf_counter()
    evaluation = evaluate(
        train,
        held,
        n,
        outcomes.categories,
        policy=config.refusals,
        bootstrap=config.bootstrap,
        over=config.bootstrap_over,
        seed=config.seed,
    )
    fit = evaluation.fit
    metrics = _run_info(config, outcomes, backend.name, mode, budget, train, held)
    metrics["stopping"] = stopping
    metrics.update(evaluation.metrics)
    metrics["fit"] = {
        "method": "thurstonian",
        "converged": fit.converged,
        "n_iter": fit.n_iter,
        "seconds": time.perf_counter() - fit_t0,
        "train_log_loss": fit.loss,
    }
    n_answers = 2 * settings.samples if mode == "sample" else 0
    metrics["completeness_random_expected"] = coin_completeness(n_answers)
    metrics["baseline_random"] = random_baseline(train, held, n, n_answers, config.seed)

    truth_stats = _write_truth(backend, outcomes, out, fit.mean)
    if truth_stats:
        metrics["truth"] = truth_stats
    utilities = pd.DataFrame(
        {
            "id": np.arange(n),
            "outcome": outcomes.texts,
            "category": outcomes.categories,
            "mean": fit.mean,
            "sigma": fit.sigma,
            "ci_low": evaluation.per_outcome["ci_low"],
            "ci_high": evaluation.per_outcome["ci_high"],
            "refusal_rate": evaluation.per_outcome["refusal_rate"],
        }
    )
    pairs_table = _pairs_table(fit, train, held)
    metrics["cost_usd"] = _cost(backend, metrics["tokens_in"], metrics["tokens_out"])
    metrics["elapsed_seconds"] = time.perf_counter() - t0
    write_csv(out / "utilities.csv", utilities)
    write_csv(out / "pairs.csv", pairs_table)
    write_json(out / "metrics.json", metrics)
    _write_report(out)
    return RunResult(out=out, utilities=utilities, pairs=pairs_table, metrics=metrics)


def _elicit_design(
    config: RunConfig,
    n: int,
    budget: int,
    start: np.ndarray,
    heldout: np.ndarray,
    rng: np.random.Generator,
    ask: Callable[[np.ndarray], PairAnswers],
) -> tuple[PairAnswers, dict]:
    """Ask the training pairs the design calls for; also say whether and why it stopped early.

    With `stop_at`, the active design stops at the first round where the estimated
    Spearman of the fit with the model's full-budget utilities (from how far the
    ranking still moves, `design.information.estimated_spearman`) reaches it.
    """
    held_codes = pair_codes(heldout, n)
    stopping = {"stop_at": config.stop_at, "stopped_early": False, "estimated_spearman": None}
    if config.design == "full":
        codes = np.setdiff1d(np.arange(n * n).reshape(n, n)[np.triu_indices(n, 1)], held_codes)
        return ask(decode(codes, n)), stopping
    start = start[:budget]
    if config.design == "random":
        exclude = np.concatenate([pair_codes(start, n), held_codes])
        extra = decode(sample_new_codes(n, budget - len(start), exclude, rng), n)
        return ask(np.concatenate([start, extra])), stopping
    parts = [ask(start)]
    asked = start
    init = None
    previous: tuple[np.ndarray, int] | None = None
    step = batch_size(n, budget)
    while len(asked) < budget:
        so_far = merge_answers(parts)
        fit = fit_thurstonian(so_far.pairs, so_far.p, n, init=init, check_input=False)
        init = fit.raw_params
        if previous is not None and config.stop_at is not None:
            estimate = estimated_spearman(previous[0], fit.mean, previous[1], len(asked))
            stopping["estimated_spearman"] = estimate
            if estimate >= config.stop_at:
                stopping["stopped_early"] = True
                break
        previous = (fit.mean, len(asked))
        batch = select_batch(fit.mean, asked, held_codes, min(step, budget - len(asked)), rng)
        if len(batch) == 0:
            break
        parts.append(ask(batch))
        asked = np.concatenate([asked, batch])
    return merge_answers(parts), stopping


def _note_cost(progress: Progress, backend, parts: list[PairAnswers]) -> None:
    """Pass the tokens and cost of the answers just received to the progress display."""
    note = getattr(progress, "cost", None)  # progress objects need not implement it
    if note is not None:
        t_in, t_out = sum(p.tokens_in for p in parts), sum(p.tokens_out for p in parts)
        note(t_in, t_out, _cost(backend, t_in, t_out))


def _cost(backend, tokens_in: int, tokens_out: int) -> float | None:
    """Cost in USD when the backend knows its prices (USD per million tokens in, out)."""
    prices = getattr(backend, "prices", None)
    if not prices:
        return None
    return (tokens_in * prices[0] + tokens_out * prices[1]) / 1e6


def _run_info(
    config: RunConfig,
    outcomes: OutcomeSet,
    backend_name: str,
    mode: str,
    budget: int,
    train: PairAnswers,
    held: PairAnswers | None,
) -> dict:
    """What was run and what it cost."""
    every = merge_answers([train] + ([held] if held is not None else []))
    return {
        "model": config.model,
        "backend": backend_name,
        "version": __version__,
        "seed": config.seed,
        "outcomes_set": outcomes.name,
        "mode": mode,
        "samples": config.samples if mode == "sample" else 1,
        "design": config.design,
        "template": config.template,
        "refusal_policy": config.refusals,
        "n_outcomes": len(outcomes),
        "n_pairs": len(train.p),
        "n_heldout_pairs": 0 if held is None else len(held.p),
        "budget": budget,
        "n_queries": every.n_queries,
        "n_queries_new": every.n_new,
        "n_queries_cached": every.n_queries - every.n_new,
        "tokens_in": every.tokens_in,
        "tokens_out": every.tokens_out,
        "cost_usd": None,
    }


def _write_truth(backend, outcomes: OutcomeSet, out: Path, mean: np.ndarray) -> dict | None:
    truth_fn = getattr(backend, "truth", None)
    if truth_fn is None:
        return None
    truth = truth_fn(outcomes.texts)
    write_csv(out / "truth.csv", truth)
    return {
        "spearman": float(spearmanr(mean, truth["mean"])[0]),
        "pearson": float(pearsonr(mean, truth["mean"])[0]),
    }


def _pairs_table(fit, train: PairAnswers, held: PairAnswers | None) -> pd.DataFrame:
    frames = []
    for split, part in (("train", train), ("heldout", held)):
        if part is None:
            continue
        frames.append(
            pd.DataFrame(
                {
                    "a": part.pairs[:, 0],
                    "b": part.pairs[:, 1],
                    "p": part.p,
                    "q": fit.predict(part.pairs),
                    "n_answers": part.n_answers,
                    "n_refused": part.n_refused,
                    "split": split,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def _write_report(out: Path) -> None:
    try:
        from valuescope.report import build_report
    except ImportError:  # the report package is optional while it is being built
        return
    try:
        build_report(out)
    except OSError as exc:  # disk full, read-only file system: the tables are written
        reason = exc.strerror or str(exc)
        raise ValuescopeError(
            f"cannot write the report in {out}: {reason} (utilities.csv and metrics.json "
            "are saved; `valuescope report` rebuilds it)"
        ) from None
