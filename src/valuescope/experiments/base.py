"""What every analysis shares: a registry entry, a context that measures utilities, results."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from valuescope.atomic import write_text
from valuescope.config import RunConfig
from valuescope.elicit.cache import ResponseCache, query_key
from valuescope.errors import ValuescopeError
from valuescope.models.base import Answer, Query
from valuescope.report import build_report
from valuescope.runcore.pipeline import RunResult, run
from valuescope.runcore.plan import Progress, backend_options
from valuescope.runcore.rundir import prepare_out_dir, write_json

GENERATIONS = "generations.sqlite"  # the free-text replies of an analysis, in its out folder
FREE_TEXT = "free-text"  # the template name of a free-text request in the cache key


class ExperimentError(ValuescopeError):
    """Bad parameters or degenerate data for an analysis."""


@dataclass
class ExperimentContext:
    """Where an analysis runs and how it asks the model.

    `run_options` are RunConfig fields chosen on the command line (mode, samples,
    base_url, concurrency, ...); they apply to every utility measurement the analysis
    makes. `quick` asks the analysis for reduced sizes (minutes on the embedded model).
    `params` are analysis-specific `--param key=value` settings; `run_dirs` are existing
    run directories (for analyses across runs, such as convergence).
    """

    model: str
    out: Path
    seed: int = 0
    quick: bool = False
    run_options: dict[str, Any] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    run_dirs: list[Path] = field(default_factory=list)
    progress: Progress | None = None
    judge: str | None = None  # `--judge MODEL`: another model that judges replies
    # backends built so far, by model and backend options: a model loads once per analysis
    _backends: dict = field(default_factory=dict, repr=False, compare=False)

    def measure(
        self, name: str, outcomes: list[dict[str, Any]] | list[str], **overrides: Any
    ) -> RunResult:
        """Fit utilities over `outcomes` with the full pipeline, in `out/name/`.

        Outcomes are dicts with `text` (and optional `category`, `id`) or plain strings.
        The sub-run keeps its own cache, so a rerun of the analysis resumes.
        """
        if len(outcomes) < 2:
            raise ExperimentError(f"{name}: needs at least 2 outcomes, got {len(outcomes)}")
        sub = prepare_out_dir(self.out / name)
        path = sub / "outcomes.yaml"
        write_text(
            path, yaml.safe_dump(_outcome_file(outcomes), sort_keys=False, allow_unicode=True)
        )
        options = {"bootstrap": 20, **self.run_options, **overrides}
        config = RunConfig(model=self.model, outcomes=str(path), out=sub, seed=self.seed, **options)
        # the analysis owns its sub-run directory: a changed analysis replaces the old run
        return run(
            config,
            progress=self.progress,
            overwrite=True,
            backend=self._backend_for(config),
            report=build_report,
        )

    def generate(
        self,
        prompts: Sequence[tuple[tuple[str, str], ...]],
        *,
        max_tokens: int,
        temperature: float,
        seed: int,
        model: str | None = None,
    ) -> list[str]:
        """Free-text replies to chats from `model` (the analysis's own by default), in order.

        Every reply is kept in `out/generations.sqlite` (the response cache's format, keyed
        like an answer: model, endpoint, messages, seed, temperature, token limit), so a
        rerun of the analysis reads the replies it has instead of asking again. A call's
        replies are stored together once it returns: an interrupted analysis resumes call
        by call.
        """
        backend = self.backend(model)
        if getattr(backend, "generate", None) is None:
            raise ExperimentError(f"model {model or self.model} cannot generate free text")
        queries = [
            Query(
                messages=tuple((role, text) for role, text in chat),
                option_a="",
                option_b="",
                mode="sample",
                sample_index=seed,
                temperature=temperature,
                max_tokens=max_tokens,
                template=FREE_TEXT,
            )
            for chat in prompts
        ]
        base_url = getattr(backend, "base_url", None)
        keys = [query_key(backend.name, q, base_url) for q in queries]
        with ResponseCache(self.out / GENERATIONS) as cache:
            kept = {key: answer.text or "" for key, answer in cache.get_many(keys).items()}
            missing = [i for i, key in enumerate(keys) if key not in kept]
            if missing:
                texts = backend.generate(
                    [queries[i].messages for i in missing],
                    max_tokens=max_tokens,
                    temperature=temperature,
                    seed=seed,
                )
                kept.update({keys[i]: t for i, t in zip(missing, texts)})
                cache.put_many(
                    (keys[i], backend.name, queries[i], Answer(text=kept[keys[i]])) for i in missing
                )
        return [kept[key] for key in keys]

    def backend(self, model: str | None = None):
        """The backend for direct questions (generation, ratings) and the sub-runs.

        `model` names another model (a judge) asked with the same transport settings.
        Built once per model: every sub-run and question of the analysis shares it.
        """
        model = model or self.model
        config = RunConfig(model=model, out=self.out, seed=self.seed, **self.run_options)
        return self._backend_for(config)

    def _backend_for(self, config: RunConfig):
        """The backend `config` names, built on first use and kept for the analysis."""
        from valuescope.models import get_backend

        options = backend_options(config)
        key = (config.model, tuple(sorted(options.items())))
        if key not in self._backends:
            self._backends[key] = get_backend(config.model, **options)
        return self._backends[key]


def _outcome_file(outcomes: list[dict[str, Any]] | list[str]) -> list[str] | dict[str, list]:
    """The structure the outcome loader reads: a list of texts, or category -> texts.

    With categories, outcomes are grouped by category in first-seen order (ids follow
    that order; analyses should match results by outcome text, not by position).
    """
    entries = [o if isinstance(o, dict) else {"text": o} for o in outcomes]
    if all(not e.get("category") for e in entries):
        return [str(e["text"]) for e in entries]
    grouped: dict[str, list[str]] = {}
    for e in entries:
        grouped.setdefault(str(e.get("category") or "uncategorised"), []).append(str(e["text"]))
    return grouped


@dataclass(frozen=True)
class Experiment:
    """One analysis: `run(ctx)` returns the result dict written to `out/NAME.json`.

    The result dict follows the contract in `write_result`.
    """

    name: str
    title: str
    summary: str
    run: Callable[[ExperimentContext], dict[str, Any]]


def write_result(ctx: ExperimentContext, experiment: Experiment, result: dict[str, Any]) -> Path:
    """Write `out/NAME.json`.

    Contract (the report renders any experiment from it):
    - `headline`: {metric: {"value": float, "ci_low": float|None, "ci_high": float|None,
      "label": str}} — the figures a reader wants first, with intervals;
    - `reading`: one paragraph saying what the figures mean for this model;
    - `tables`: {name: list of row dicts}; `figures`: list of file names (SVG/PNG)
      relative to `out`; any other keys are kept as detail.
    """
    payload = {
        "experiment": experiment.name,
        "title": experiment.title,
        "summary": experiment.summary,
        "model": ctx.model,
        "seed": ctx.seed,
        "quick": ctx.quick,
        **result,
    }
    path = ctx.out / f"{experiment.name}.json"
    write_json(path, payload)
    return path
