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
from valuescope.elicit import pool_templates
from valuescope.elicit.elicit import PairAnswers
from valuescope.experiments.base import ExperimentContext, ExperimentError
from valuescope.outcomes import OutcomeSet
from valuescope.runcore.plan import plan_questions
from valuescope.runcore.rundir import prepare_out_dir
from valuescope.runcore.session import open_run


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
    """Ask every pair (indices into `texts`) in both orders; cache in `ctx.out / name`.

    Asked through the run path (`runcore.session.open_run`): the directory is locked,
    run_config.json records the settings and the texts, and `--engine ray` applies.
    """
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    if len(pairs) == 0:
        raise ExperimentError(f"{name}: no pairs to ask")
    sub = prepare_out_dir(ctx.out / name)
    config = RunConfig(model=ctx.model, out=sub, seed=ctx.seed, **ctx.run_options)
    outcomes = OutcomeSet(name, tuple(texts), ("",) * len(texts))
    the_plan = plan_questions(config, outcomes, backend=ctx.backend())
    templates, settings, backend = the_plan.templates, the_plan.settings, the_plan.backend
    per_pair = 2 * (settings.samples if the_plan.mode == "sample" else 1) * len(templates)
    with open_run(the_plan, ctx.progress) as session:
        session.progress.start(per_pair * len(pairs), f"asking {backend.name.split('#')[0]}")
        parts = [session.ask_pairs([pairs], t)[0] for t in templates]
    mode = the_plan.mode
    return Choices(
        answers=pool_templates(parts, settings.refusals),
        mode=mode,
        samples=settings.samples,
        n_templates=len(templates),
    )
