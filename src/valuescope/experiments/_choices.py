"""Direct forced choices over a fixed list of pairs, outside a utility fit.

Some analyses need the answer to particular questions ("$1,000 today or $1,550 in
8 months?") rather than utilities over every outcome: `ask_pairs` asks exactly the
given pairs, both orders, with the run settings of the analysis (mode, samples,
templates, refusal policy), through a response cache in `out/NAME/` so that a rerun asks
nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from valuescope.config import RunConfig
from valuescope.elicit import ResponseCache, elicit_pairs, get_template, pool_templates
from valuescope.elicit.elicit import PairAnswers
from valuescope.experiments.base import ExperimentContext, ExperimentError
from valuescope.runcore.pipeline import (
    Progress,
    backend_options,
    check_templates,
    elicit_settings,
    resolve_mode,
)
from valuescope.runcore.rundir import prepare_out_dir


@dataclass
class Choices:
    """Answers to fixed pairs: `answers.p[e]` is P(first outcome of pairs[e] chosen)."""

    answers: PairAnswers
    mode: str
    samples: int
    n_templates: int

    def summary(self) -> dict:
        """Counts for the result JSON."""
        a = self.answers
        return {
            "n_pairs": int(len(a.pairs)),
            "n_queries": int(a.n_queries),
            "n_new_queries": int(a.n_new),
            "mode": self.mode,
            "samples": self.samples if self.mode == "sample" else None,
            "templates": self.n_templates,
            "position_bias": _finite_or_none(a.position_bias),
            "refusal_rate": _finite_or_none(a.refusal_rate),
            "tokens_in": int(a.tokens_in),
            "tokens_out": int(a.tokens_out),
        }


def _finite_or_none(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def ask_pairs(ctx: ExperimentContext, name: str, texts: list[str], pairs: np.ndarray) -> Choices:
    """Ask every pair (indices into `texts`) in both orders; cache in `ctx.out / name`."""
    from valuescope.models import get_backend

    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    if len(pairs) == 0:
        raise ExperimentError(f"{name}: no pairs to ask")
    sub = prepare_out_dir(ctx.out / name)
    config = RunConfig(model=ctx.model, out=sub, seed=ctx.seed, **ctx.run_options)
    backend = get_backend(config.model, **backend_options(config))
    mode = resolve_mode(config, backend.supports_logprobs)
    templates = [get_template(t.strip()) for t in config.template.split(",") if t.strip()]
    if not templates:
        raise ExperimentError("--template: name at least one template")
    check_templates(templates, mode)
    settings = elicit_settings(config, mode)
    per_pair = 2 * (settings.samples if mode == "sample" else 1) * len(templates)
    progress = ctx.progress or Progress()
    progress.start(per_pair * len(pairs), f"asking {backend.name.split('#')[0]}")
    with ResponseCache(sub / "responses.sqlite") as cache:
        parts = [
            elicit_pairs(backend, texts, pairs, t, settings, cache, progress.advance)
            for t in templates
        ]
    return Choices(
        answers=pool_templates(parts, settings.refusals),
        mode=mode,
        samples=settings.samples,
        n_templates=len(templates),
    )
