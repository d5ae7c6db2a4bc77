"""The main job: outcomes -> pair design -> elicitation -> fit -> metrics -> run directory."""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from valuescope import provenance
from valuescope._version import __version__
from valuescope.config import RunConfig
from valuescope.design import (
    batch_size,
    decode,
    heldout_size,
    pair_codes,
    sample_new_codes,
    select_batch,
    split_heldout,
)
from valuescope.design.information import (
    Reliability,
    reliability_of_halves,
    split_half_reliability,
)
from valuescope.elicit import (
    PairAnswers,
    merge_answers,
    pool_templates,
)
from valuescope.errors import ValuescopeError
from valuescope.fit import (
    ConvergenceWarning,
    coin_completeness,
    fit_thurstonian,
)
from valuescope.outcomes import OutcomeSet
from valuescope.runcore.answers import write_answers
from valuescope.runcore.fit_evaluation import evaluate, random_baseline
from valuescope.runcore.plan import Progress, RunPlan, plan
from valuescope.runcore.rundir import (
    outcomes_digest,
    write_csv,
    write_json,
)
from valuescope.runcore.session import RunSession, open_run
from valuescope.stats import correlation

# Below this split-half reliability of the sigmas, metrics.json and the report say the
# sigmas are poorly identified (a reliability of 0.5 means r of about 0.7 with the truth).
SIGMA_RELIABILITY = 0.5


@dataclass
class RunResult:
    """What a run produced: the tables it wrote and its metrics."""

    out: Path
    utilities: pd.DataFrame
    pairs: pd.DataFrame
    metrics: dict


def run(
    config: RunConfig | RunPlan,
    progress: Progress | None = None,
    *,
    overwrite: bool = False,
    backend: object = None,
    report: Callable[[Path], object] | None = None,
) -> RunResult:
    """Run the whole pipeline and write the run directory.

    `config` is a validated plan (`plan`) or the settings to plan from; `backend` an
    already built backend (an analysis's sub-runs share one, so a model loads once).
    `report(out)` writes report.html once the tables are saved: the report layer sits
    above the run core, so its callers (the CLI, the Python API, the analyses) pass
    `valuescope.report.build_report`; None writes no report. The
    run directory is locked while the run lasts (`session.open_run`): a second run on the
    same directory fails at once instead of mixing its files with this one's.
    """
    t0 = time.perf_counter()
    if isinstance(config, RunPlan):
        the_plan = config
    else:
        the_plan = plan(config, overwrite=overwrite, backend=backend)
    started = time.time()  # answers stored from now on are this run's new ones
    with open_run(the_plan, progress) as session:  # the report too is written under the lock
        result = _run(session, t0, started)
        if report is not None:
            _write_report(result.out, report)
    return result


def _run(session: RunSession, t0: float, started: float) -> RunResult:
    the_plan, progress = session.plan, session.progress
    config, outcomes, backend = the_plan.config, the_plan.outcomes, the_plan.backend
    mode, templates, out, budget = the_plan.mode, the_plan.templates, the_plan.out, the_plan.budget
    settings = the_plan.settings

    n = len(outcomes)
    rng = np.random.default_rng(config.seed)
    n_heldout = heldout_size(n, config.heldout_fraction, config.max_heldout)
    start, heldout, triads = split_heldout(n, rng, n_heldout)
    progress.start(the_plan.n_queries, f"asking {backend.name.split('#')[0]}")

    def ask_sets(pair_sets: list[np.ndarray]) -> list[PairAnswers]:
        per_template = [session.ask_pairs(pair_sets, t) for t in templates]
        by_set = [[parts[k] for parts in per_template] for k in range(len(pair_sets))]
        for parts in by_set:  # one note per set of pairs, as when each was asked alone
            _note_cost(progress, backend, parts)
        return [pool_templates(parts, settings.refusals) for parts in by_set]

    # A streaming backend gets the held-out pairs with the design's first pairs: one
    # stream waits for its last slow reply once, not twice (docs/benchmarks.md).
    fold = len(heldout) > 0 and streams(backend, config)
    held_box: list[PairAnswers] = []

    def ask(pairs: np.ndarray) -> PairAnswers:
        if fold and not held_box:
            held_part, part = ask_sets([heldout, pairs])
            held_box.append(held_part)
            return part
        return ask_sets([pairs])[0]

    try:
        held = ask(heldout) if len(heldout) and not fold else None
        train, stopping = _elicit_design(config, n, budget, start, heldout, rng, ask)
        if fold:
            held = held_box[0] if held_box else ask_sets([heldout])[0]
    finally:
        session.release_engine()  # the workers are not needed for the fit

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
        heldout_triads=triads,
    )
    fit = evaluation.fit
    metrics = _run_info(config, outcomes, backend.name, mode, budget, train, held)
    metrics["stopping"] = stopping
    metrics["sigma_identified"] = sigma_identification(stopping)
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
    coin_samples = settings.samples * len(templates) if mode == "sample" else 0
    metrics["baseline_random"] = random_baseline(
        lambda coin: _elicit_design(
            config, n, budget, start, heldout, np.random.default_rng([config.seed, 7919]), coin
        ),
        heldout,
        triads,
        n,
        coin_samples,
        config.seed,
    )

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
    metrics["provenance"] = provenance.collect(
        started=started,
        model=config.model,
        backend=backend,
        engine=config.engine,
        outcomes_sha256=outcomes_digest(outcomes.texts, outcomes.categories),
        templates=templates,
    )
    write_csv(out / "utilities.csv", utilities)
    write_csv(out / "pairs.csv", pairs_table)
    write_json(out / "metrics.json", metrics)
    write_answers(out)  # from the cache and pairs.csv: one row per answer
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

    The active design runs as two independent half-designs (`_two_half_design`); with
    `stop_at` it stops at the first round where their agreement, Spearman-Brown corrected
    (the test-retest reliability of the utilities), reaches it. The reference design is
    one adaptive stream and spends its whole budget. Every design ends with the
    reliability of its final answers in the returned record.
    """
    held_codes = pair_codes(heldout, n)
    stopping: dict = {
        "stop_at": config.stop_at if config.design == "active" else None,
        "rule": "split-half reliability of the mean utilities (Spearman-Brown corrected)",
        "stopped_early": False,
        "history": [],
    }
    split_rng = np.random.default_rng([config.seed, 0x5EED])
    if config.design == "full":
        codes = np.setdiff1d(np.arange(n * n).reshape(n, n)[np.triu_indices(n, 1)], held_codes)
        return _with_reliability(ask(decode(codes, n)), n, stopping, split_rng)
    start = start[:budget]
    if config.design == "random":
        exclude = np.concatenate([pair_codes(start, n), held_codes])
        extra = decode(sample_new_codes(n, budget - len(start), exclude, rng), n)
        return _with_reliability(ask(np.concatenate([start, extra])), n, stopping, split_rng)
    if config.design == "active" and len(start) >= 4:  # each half needs pairs to fit
        return _two_half_design(config, n, budget, start, held_codes, rng, ask, stopping)
    stopping["reliability_note"] = (
        "not measured: one adaptive stream picks its pairs from all its answers, so a "
        "split over its pairs overstates the reliability (a coin scores about 0.8); "
        "reliability_pair_split is that overstated figure"
    )
    parts = [ask(start)]
    asked = start
    init = None
    step = batch_size(n, budget)
    while len(asked) < budget:
        so_far = merge_answers(parts)
        fit = fit_thurstonian(so_far.pairs, so_far.p, n, init=init, check_input=False)
        init = fit.raw_params
        batch = select_batch(fit.mean, asked, held_codes, min(step, budget - len(asked)), rng)
        if len(batch) == 0:
            break
        parts.append(ask(batch))
        asked = np.concatenate([asked, batch])
    train, stopping = _with_reliability(merge_answers(parts), n, stopping, split_rng)
    stopping["reliability_pair_split"] = stopping.pop("reliability")
    stopping["reliability"] = None
    return train, stopping


def _two_half_design(
    config: RunConfig,
    n: int,
    budget: int,
    start: np.ndarray,
    held_codes: np.ndarray,
    rng: np.random.Generator,
    ask: Callable[[np.ndarray], PairAnswers],
    stopping: dict,
) -> tuple[PairAnswers, dict]:
    """Two adaptive designs that never see each other's answers, asked as one run.

    The start cycle is dealt alternately to halves A and B; every round each half fits its
    own answers and picks its share of the batch from that fit alone (a share
    `uniform_share` of it uniform). The two fits are then independent replications of a
    half-size run, even for a coin (whose halves share no answer they were chosen on), so
    the Spearman between them, Spearman-Brown corrected, is the test-retest reliability
    of the pooled utilities. The pooled answers are what the run fits.
    """
    asked = [start[0::2], start[1::2]]
    halves = [[part] for part in _ask_split(ask, asked)]
    inits: list = [None, None]
    step = batch_size(n, budget)
    while True:
        answers = [merge_answers(h) for h in halves]
        fits = []
        for i, part in enumerate(answers):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)  # a half is a probe
                fits.append(
                    fit_thurstonian(part.pairs, part.p, n, init=inits[i], check_input=False)
                )
            inits[i] = fits[-1].raw_params
        rel = reliability_of_halves(fits[0], fits[1], sum(len(a) for a in asked))
        stopping["history"].append([rel.n_pairs, rel.mean])
        if config.stop_at is not None and rel.mean >= config.stop_at:
            stopping["stopped_early"] = True
            break
        k = min(step, budget - rel.n_pairs)
        if k <= 0:
            break
        batches = []
        for i, share in enumerate(((k + 1) // 2, k // 2)):
            other = np.concatenate([asked[1 - i], *batches])
            exclude = np.concatenate([held_codes, pair_codes(other, n)])
            batches.append(
                select_batch(
                    fits[i].mean, asked[i], exclude, share, rng, uniform_share=config.uniform_share
                )
            )
        if sum(len(b) for b in batches) == 0:
            break
        for i, part in enumerate(_ask_split(ask, batches)):
            halves[i].append(part)
            asked[i] = np.concatenate([asked[i], batches[i]])
    return merge_answers(halves[0] + halves[1]), _stopping_record(stopping, rel)


def _ask_split(ask: Callable[[np.ndarray], PairAnswers], groups: list) -> list[PairAnswers]:
    """Ask several groups of pairs in one call (one batch for the backend), then split.

    Per-pair arrays are cut at the group boundaries; the run totals (queries, tokens,
    position counts) go with the first group, so merging the parts adds up to the call.
    """
    sizes = [len(g) for g in groups]
    answers = ask(np.concatenate(groups).reshape(-1, 2))
    cuts = np.cumsum(sizes)[:-1]
    parts = []
    for j, (lo, hi) in enumerate(zip([0, *cuts], [*cuts, sum(sizes)], strict=True)):
        values = {}
        for field in dataclasses.fields(answers):
            value = getattr(answers, field.name)
            if isinstance(value, np.ndarray) and len(value) == len(answers.p):
                values[field.name] = value[lo:hi]
            else:
                values[field.name] = value if j == 0 else type(value)(0)
        parts.append(PairAnswers(**values))
    return parts


def _with_reliability(
    train: PairAnswers, n: int, stopping: dict, split_rng: np.random.Generator
) -> tuple[PairAnswers, dict]:
    """The design's answers with the split-half reliability of their fit recorded.

    Under 4 pairs there are no halves to fit: the reliabilities are recorded as None.
    """
    if len(train.p) < 4:
        stopping.update(reliability=None, reliability_sigma=None, n_pairs=len(train.p))
        return train, stopping
    rel = split_half_reliability(train.pairs, train.p, n, split_rng)
    return train, _stopping_record(stopping, rel)


def _stopping_record(stopping: dict, rel: Reliability) -> dict:
    stopping["reliability"] = rel.mean
    stopping["reliability_sigma"] = rel.sigma
    stopping["n_pairs"] = rel.n_pairs
    return stopping


def sigma_identification(stopping: dict, threshold: float = SIGMA_RELIABILITY) -> dict:
    """Whether the fitted sigmas can be read: their split-half reliability against a bar."""
    value = stopping.get("reliability_sigma")
    return {
        "identified": value is not None and value >= threshold,
        "split_half_reliability": value,
        "threshold": threshold,
        "definition": "Spearman between the sigmas fitted on two random halves of the "
        "training pairs, Spearman-Brown corrected; below the threshold a rerun would "
        "reorder the sigmas substantially, so read them with care",
    }


def streams(backend, config: RunConfig) -> bool:
    """Whether the run's questions stream (an API backend on the local engine)."""
    return config.engine == "local" and callable(getattr(backend, "answer_stream", None))


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
        "protocol": config.protocol,
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
        (out / "truth.csv").unlink(missing_ok=True)  # never a truth of another model
        return None
    truth = truth_fn(outcomes.texts)
    write_csv(out / "truth.csv", truth)
    return {
        "spearman": correlation(mean, truth["mean"], "spearman"),
        "pearson": correlation(mean, truth["mean"]),
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


def _write_report(out: Path, report: Callable[[Path], object]) -> None:
    try:
        report(out)
    except OSError as exc:  # disk full, read-only file system: the tables are written
        reason = exc.strerror or str(exc)
        raise ValuescopeError(
            f"cannot write the report in {out}: {reason} (utilities.csv and metrics.json "
            "are saved; `valuescope report` rebuilds it)"
        ) from None
