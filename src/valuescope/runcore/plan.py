"""A run's plan: its settings, outcomes, backend, mode, templates and directory, all checked
before the first question (no model calls).

Every command that asks questions plans here and asks through `session.open_run`:
`plan` for a utility run (`valuescope run`, `sensitivity`, an analysis's sub-runs),
`plan_questions` for fixed questions in a directory the caller owns (an analysis's direct
choices, the citizens' assembly).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from valuescope.config import RunConfig
from valuescope.design import check_budget, default_budget, heldout_size, n_all_pairs
from valuescope.elicit import ElicitSettings, ResponseCache, get_template
from valuescope.elicit.prompts import Template
from valuescope.engine import check_engine
from valuescope.errors import ValuescopeError
from valuescope.models import get_backend
from valuescope.outcomes import OutcomeSet, load_outcomes
from valuescope.runcore.rundir import check_run_dir, normalise_source, prepare_out_dir


class Progress:
    """Receives progress events; the CLI shows a bar, the Python API ignores them."""

    def start(self, total: int, description: str) -> None: ...

    def advance(self, n: int) -> None: ...

    def cost(self, tokens_in: int, tokens_out: int, usd: float | None) -> None:
        """Tokens (and USD, where the backend knows its prices) of answers just received."""


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
    """A validated run: everything is checked before the first question is asked.

    `record` is what run_config.json holds (default: the run settings); `budget` the
    training pairs of a utility run (0 for fixed questions).
    """

    config: RunConfig
    outcomes: OutcomeSet
    backend: object
    mode: str
    templates: list[Template]
    out: Path
    budget: int
    settings: ElicitSettings
    overwrite: bool = False  # remove an earlier run's result files before writing
    record: dict | None = None

    @property
    def n_queries(self) -> int:
        n_heldout = heldout_size(
            len(self.outcomes), self.config.heldout_fraction, self.config.max_heldout
        )
        per_pair = 2 * (self.settings.samples if self.mode == "sample" else 1)
        per_pair *= len(self.templates)
        return (self.budget + n_heldout) * per_pair

    @property
    def settings_record(self) -> dict:
        """The settings run_config.json records (transport included, keys never)."""
        return self.record if self.record is not None else self.config.model_dump(mode="json")


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


def check_templates(templates: list[Template], mode: str) -> None:
    """Reasoning templates answer after free text: they need sample mode."""
    for t in templates:
        if t.reasoning and mode != "sample":
            raise ValuescopeError(
                f"template {t.name!r} answers after its reasoning; use --mode sample"
            )


def record_template_files(config: RunConfig, templates: list[Template]) -> RunConfig:
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
    config, backend, mode, templates = _resolve(config, backend)
    n = len(outcomes)
    budget = plan_budget(config, n, heldout_size(n, config.heldout_fraction, config.max_heldout))
    per_pair = 2 * (config.samples if mode == "sample" else 1) * len(templates)
    check_full_design_memory(config, outcomes, per_pair)
    out = prepare_out_dir(Path(config.out))
    if not overwrite:
        defaults = RunConfig().model_dump(mode="json")
        settings = config.model_dump(mode="json")
        check_run_dir(out, settings, defaults, outcomes.texts, outcomes.categories)
    _check_cache(out / "responses.sqlite")
    settings = elicit_settings(config, mode)
    return RunPlan(config, outcomes, backend, mode, templates, out, budget, settings, overwrite)


def plan_questions(
    config: RunConfig,
    outcomes: OutcomeSet,
    *,
    backend: object = None,
    record: dict | None = None,
) -> RunPlan:
    """A plan for fixed questions about `outcomes` in a directory its caller owns.

    An analysis's direct choices and the citizens' assembly ask the pairs they chose, not
    a design's: no budget, and the directory is theirs (a changed analysis replaces its
    run_config.json; the answer cache stays). `record` is what run_config.json holds
    (default: `config`'s settings).
    """
    check_engine(config.engine)
    config, backend, mode, templates = _resolve(config, backend)
    out = prepare_out_dir(Path(config.out))
    _check_cache(out / "responses.sqlite")
    settings = elicit_settings(config, mode)
    return RunPlan(
        config, outcomes, backend, mode, templates, out, 0, settings, overwrite=True, record=record
    )


def _check_cache(path: Path) -> None:
    """Open an existing answer cache once, so a corrupt one fails here, not midway.

    A missing cache is not created: planning writes nothing, so a run refused by another
    run's lock leaves the directory as it found it.
    """
    if path.exists():
        ResponseCache(path).close()


def _resolve(config: RunConfig, backend: object) -> tuple[RunConfig, object, str, list[Template]]:
    """The backend (built from `config.model` unless given), the mode and the templates."""
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
    return config, backend, mode, templates
