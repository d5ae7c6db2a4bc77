"""Prompt sensitivity: the same pairs under several templates, compared."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from valuescope.config import RunConfig
from valuescope.design import decode, pair_codes, sample_new_codes, split_start
from valuescope.elicit.prompts import SENSITIVITY_TEMPLATES
from valuescope.errors import ValuescopeError
from valuescope.fit import fit_thurstonian
from valuescope.models import get_backend
from valuescope.runcore.fit_evaluation import position_share
from valuescope.runcore.plan import Progress, backend_options, plan, plan_budget, resolve_mode
from valuescope.runcore.rundir import write_csv, write_json
from valuescope.runcore.session import RunSession, open_run
from valuescope.stats import correlation

# A template whose utilities agree with the others this much less than the typical
# template does (in Spearman correlation) is flagged as noisy.
NOISY_MARGIN = 0.1


@dataclass
class SensitivityResult:
    """Per-template utilities and the comparison table."""

    out: Path
    utilities: pd.DataFrame
    templates: pd.DataFrame
    summary: dict


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman correlation of two templates' utilities (NaN where undefined)."""
    return correlation(x, y, "spearman")


def sensitivity(
    config: RunConfig,
    templates: Sequence[str] | None = None,
    progress: Progress | None = None,
    *,
    backend: object = None,
    overwrite: bool = False,
) -> SensitivityResult:
    """Ask the same random pairs under each template and compare what comes out.

    Planned and asked like a run (`plan`, `session.open_run`): the directory is locked,
    run_config.json records the settings (random design, no held-out pairs, the templates
    compared), a directory of another run is refused unless `overwrite`, and
    `config.engine` says where the questions are answered.
    """
    if backend is None:
        backend = get_backend(config.model, **backend_options(config))
    mode = resolve_mode(config, backend.supports_logprobs)
    if templates is None:  # direct vs reasoning answers only where answers are sampled
        templates = SENSITIVITY_TEMPLATES + (("reasoning",) if mode == "sample" else ())
    if len(templates) < 2:
        raise ValuescopeError("sensitivity needs at least 2 templates to compare")
    asked = config.model_copy(
        update={"design": "random", "heldout_fraction": 0.0, "template": ",".join(templates)}
    )
    the_plan = plan(asked, overwrite=overwrite, backend=backend)
    with open_run(the_plan, progress) as session:
        return _ask_and_compare(session)


def _ask_and_compare(session: RunSession) -> SensitivityResult:
    """The asking, fitting and writing of `sensitivity`, under the directory lock."""
    the_plan = session.plan
    config, outcomes, out = the_plan.config, the_plan.outcomes, the_plan.out
    n, mode = len(outcomes), the_plan.mode
    rng = np.random.default_rng(config.seed)
    start, _ = split_start(n, rng, 0)
    budget = plan_budget(config, n, 0)  # every pair is asked under every template: none held out
    extra = decode(sample_new_codes(n, budget - len(start), pair_codes(start, n), rng), n)
    pairs = np.concatenate([start, extra])
    per_pair = 2 * (the_plan.settings.samples if mode == "sample" else 1)
    session.progress.start(
        len(pairs) * per_pair * len(the_plan.templates), "asking under each template"
    )
    answers = {t.name: session.ask_pairs([pairs], t)[0] for t in the_plan.templates}
    session.release_engine()
    means = {name: fit_thurstonian(pairs, a.p, n).mean for name, a in answers.items()}
    pooled_p = np.mean([a.p for a in answers.values()], axis=0)
    pooled = fit_thurstonian(pairs, pooled_p, n).mean
    table = compare_templates(answers, means, pooled, pooled_p, pairs, n)
    utilities = pd.DataFrame(
        {"id": np.arange(n), "outcome": outcomes.texts, "category": outcomes.categories}
    )
    for name, mean in means.items():
        utilities[name] = mean
    utilities["pooled"] = pooled
    corr = pd.DataFrame(
        [[spearman(means[a], means[b]) for b in means] for a in means],
        index=list(means),
        columns=list(means),
    )
    summary = {
        "model": config.model,
        "outcomes_set": outcomes.name,
        "mode": mode,
        "n_outcomes": n,
        "n_pairs": len(pairs),
        "templates": list(means),
        "n_queries": sum(a.n_queries for a in answers.values()),
        "n_queries_new": sum(a.n_new for a in answers.values()),
        "mean_pairwise_spearman": float(corr.values[np.triu_indices(len(means), 1)].mean()),
        "flagged_noisy": table.loc[table["flagged_noisy"], "template"].tolist(),
        "per_template": table.to_dict(orient="records"),
        "spearman_matrix": corr.round(6).to_dict(),
    }
    write_csv(out / "sensitivity_utilities.csv", utilities)
    write_csv(out / "sensitivity_templates.csv", table)
    write_json(out / "sensitivity.json", summary)
    return SensitivityResult(out=out, utilities=utilities, templates=table, summary=summary)


def compare_templates(
    answers: dict, means: dict, pooled: np.ndarray, pooled_p: np.ndarray, pairs, n: int
) -> pd.DataFrame:
    """One row per template: agreement with the others, position bias, flips, order effects."""
    names = list(means)
    rows = []
    for name in names:
        a = answers[name]
        others = [spearman(means[name], means[o]) for o in names if o != name]
        share_sum, share_count = position_share(a.prefs)
        decided = (a.p != 0.5) & (pooled_p != 0.5)
        flips = np.sign(a.p - 0.5) != np.sign(pooled_p - 0.5)
        order_first = np.nanmean(a.prefs[:, 0, :], axis=1)
        order_second = np.nanmean(a.prefs[:, 1, :], axis=1)
        both = ~np.isnan(order_first) & ~np.isnan(order_second)
        order_flip = np.sign(order_first - 0.5) != np.sign(order_second - 0.5)
        rows.append(
            {
                "template": name,
                "spearman_with_others": float(np.mean(others)),
                "spearman_with_pooled": spearman(means[name], pooled),
                "position_bias": share_sum / share_count if share_count else float("nan"),
                "refusal_rate": a.refusal_rate,
                "flip_share": float(flips[decided].mean()) if decided.any() else float("nan"),
                "order_flip_share": float(order_flip[both].mean()) if both.any() else float("nan"),
            }
        )
    table = pd.DataFrame(rows)
    typical = float(np.median(table["spearman_with_others"]))
    table["flagged_noisy"] = table["spearman_with_others"] < typical - NOISY_MARGIN
    return table
