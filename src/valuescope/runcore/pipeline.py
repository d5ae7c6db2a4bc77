"""The main job: outcomes -> pair design -> elicitation -> fit -> metrics -> run directory."""

from __future__ import annotations

import dataclasses
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import pearsonr, spearmanr

from valuescope import provenance
from valuescope._version import __version__
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
    split_heldout,
)
from valuescope.design.information import (
    Reliability,
    reliability_of_halves,
    split_half_reliability,
)
from valuescope.elicit import (
    ElicitSettings,
    PairAnswers,
    ResponseCache,
    get_template,
    merge_answers,
    pool_templates,
)
from valuescope.elicit.elicit import elicit_pair_sets
from valuescope.engine import check_engine, make_engine
from valuescope.errors import ValuescopeError
from valuescope.export import write_answers
from valuescope.fit import (
    ConvergenceWarning,
    coin_completeness,
    fit_thurstonian,
)
from valuescope.models import get_backend
from valuescope.outcomes import OutcomeSet, load_outcomes
from valuescope.runcore.fit_evaluation import evaluate, random_baseline
from valuescope.runcore.rundir import (
    check_run_dir,
    clear_run_files,
    normalise_source,
    outcomes_digest,
    prepare_out_dir,
    run_dir_lock,
    write_csv,
    write_json,
    write_run_config,
)

# Below this split-half reliability of the sigmas, metrics.json and the report say the
# sigmas are poorly identified (a reliability of 0.5 means r of about 0.7 with the truth).
SIGMA_RELIABILITY = 0.5


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


# --design full holds every pair, its queries and answers in memory at once: refuse a set
# whose estimate exceeds this share of the memory available, before any question.
FULL_DESIGN_MEMORY_SHARE = 0.5
QUERY_OVERHEAD_BYTES = 1500  # a Query, its Answer, cache key and list slots (measured ~1.2 KB)


def full_design_bytes(n: int, queries_per_pair: int, mean_outcome_chars: float) -> int:
    """Estimated peak memory of `--design full` on n outcomes, in bytes.

    The pair arrays (an n*n code table, then about 60 bytes per pair while the pairs are
    decoded) plus every query with its prompt text and answer.
    """
    n_pairs = n * (n - 1) // 2
    arrays = 8 * n * n + 60 * n_pairs
    prompt = 600 + 2 * mean_outcome_chars  # template text plus both outcomes
    return int(arrays + n_pairs * queries_per_pair * (QUERY_OVERHEAD_BYTES + prompt))


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (None where it cannot be told)."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:  # psutil is optional
        pass
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def check_full_design_memory(config: RunConfig, outcomes: OutcomeSet, per_pair: int) -> None:
    """--design full on a set too large for memory fails here, with the size it needs."""
    if config.design != "full":
        return
    n = len(outcomes)
    mean_chars = sum(len(t) for t in outcomes.texts) / n
    need = full_design_bytes(n, per_pair, mean_chars)
    have = available_memory()
    if have is None or need <= FULL_DESIGN_MEMORY_SHARE * have:
        return
    raise ValuescopeError(
        f"--design full on {n:,} outcomes asks {n * (n - 1) // 2:,} pairs and needs about "
        f"{_gib(need)} of memory; {_gib(have)} is available. Use --design active (the "
        "default) or --design random with a --budget"
    )


def _gib(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:,.1f} GiB"


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
    overwrite: bool = False  # remove an earlier run's result files before writing

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
        "api_key_env": config.api_key_env,
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


def record_template_files(config: RunConfig, templates: list) -> RunConfig:
    """Template files named by absolute path, with the sha256 of each file's text.

    A run that recorded other hashes (a resumed run whose file changed since) is refused:
    its answers would mix two prompts.
    """
    files = {str(Path(t.source).resolve()): t.source_sha256 for t in templates if t.source}
    if not files:
        return config
    for path, digest in (config.template_files or {}).items():
        if path in files and files[path] != digest:
            raise ValuescopeError(
                f"template file {path} changed since this run started; restore it or start "
                "a new run in another --out"
            )
    names = [str(Path(t.source).resolve()) if t.source else t.name for t in templates]
    return config.model_copy(update={"template": ",".join(names), "template_files": files})


def plan(config: RunConfig, *, overwrite: bool = False, backend: object = None) -> RunPlan:
    """Validate settings, outcomes, model, budget and output directory (no model calls).

    A directory that holds another run (other settings or other outcomes, per its
    run_config.json) is refused unless `overwrite`, which replaces that run's result files
    (never other files; the answer cache stays). The same run again passes. `backend`: an
    already built backend to ask instead of building one from `config.model`.
    """
    check_engine(config.engine)
    outcomes = load_outcomes(config.outcomes)
    # recorded resolved, so that --resume works from any working directory
    config = config.model_copy(update={"outcomes": normalise_source(config.outcomes)})
    if backend is None:
        backend = get_backend(config.model, **backend_options(config))
    mode = resolve_mode(config, backend.supports_logprobs)
    if getattr(backend, "reasoning", False) and config.template == "default":
        # a reasoning model thinks before it answers: ask for its final "Answer: X" line
        config = config.model_copy(update={"template": "reasoning"})
    templates = [get_template(t.strip()) for t in config.template.split(",") if t.strip()]
    if not templates:
        raise ValuescopeError("--template: name at least one template")
    check_templates(templates, mode)
    config = record_template_files(config, templates)
    n = len(outcomes)
    budget = plan_budget(config, n, heldout_size(n, config.heldout_fraction, config.max_heldout))
    per_pair = 2 * (config.samples if mode == "sample" else 1) * len(templates)
    check_full_design_memory(config, outcomes, per_pair)
    out = prepare_out_dir(Path(config.out))
    if not overwrite:
        defaults = RunConfig().model_dump(mode="json")
        settings = config.model_dump(mode="json")
        check_run_dir(out, settings, defaults, outcomes.texts, outcomes.categories)
    ResponseCache(out / "responses.sqlite").close()  # a corrupt cache fails here, not midway
    settings = elicit_settings(config, mode)
    return RunPlan(config, outcomes, backend, mode, templates, out, budget, settings, overwrite)


def run(
    config: RunConfig | RunPlan, progress: Progress | None = None, *, overwrite: bool = False
) -> RunResult:
    """Run the whole pipeline and write the run directory.

    The run directory is locked while the run lasts: a second run on the same directory
    fails at once instead of mixing its files with this one's (see `run_dir_lock`).
    """
    t0 = time.perf_counter()
    the_plan = config if isinstance(config, RunPlan) else plan(config, overwrite=overwrite)
    with run_dir_lock(the_plan.out):
        return _run(the_plan, progress or Progress(), t0)


def _run(the_plan: RunPlan, progress: Progress, t0: float) -> RunResult:
    config, outcomes, backend = the_plan.config, the_plan.outcomes, the_plan.backend
    mode, templates, out, budget = the_plan.mode, the_plan.templates, the_plan.out, the_plan.budget
    settings = the_plan.settings
    started = time.time()  # answers stored from now on are this run's new ones
    if the_plan.overwrite:
        clear_run_files(out)
    write_run_config(out, config.model_dump(mode="json"), outcomes.texts, outcomes.categories)

    n = len(outcomes)
    rng = np.random.default_rng(config.seed)
    n_heldout = heldout_size(n, config.heldout_fraction, config.max_heldout)
    start, heldout, triads = split_heldout(n, rng, n_heldout)
    progress.start(the_plan.n_queries, f"asking {backend.name.split('#')[0]}")

    engine = make_engine(
        config.engine,
        config.model,
        backend_options(config),
        ray_address=config.ray_address,
        ray_workers=config.ray_workers,
    )
    with ResponseCache(out / "responses.sqlite") as cache:

        def ask_sets(pair_sets: list[np.ndarray]) -> list[PairAnswers]:
            per_template = [
                elicit_pair_sets(
                    backend, outcomes.texts, pair_sets, t, settings, cache, progress.advance, engine
                )
                for t in templates
            ]
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
