"""Prompt sensitivity: the same pairs under several templates, compared."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from valuescope.config import RunConfig
from valuescope.design import decode, pair_codes, sample_new_codes, split_start
from valuescope.elicit import ResponseCache, elicit_pairs, get_template
from valuescope.elicit.prompts import SENSITIVITY_TEMPLATES, Template
from valuescope.errors import ValuescopeError
from valuescope.fit import fit_thurstonian
from valuescope.models import get_backend
from valuescope.models.base import Backend
from valuescope.outcomes import OutcomeSet, load_outcomes
from valuescope.runcore.fit_evaluation import position_share
from valuescope.runcore.pipeline import (
    Progress,
    backend_options,
    check_templates,
    elicit_settings,
    plan_budget,
    resolve_mode,
)
from valuescope.runcore.rundir import prepare_out_dir, run_dir_lock, write_csv, write_json

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


def sensitivity(
    config: RunConfig,
    templates: Sequence[str] | None = None,
    progress: Progress | None = None,
) -> SensitivityResult:
    """Ask the same random pairs under each template and compare what comes out."""
    progress = progress or Progress()
    outcomes = load_outcomes(config.outcomes)
    backend = get_backend(config.model, **backend_options(config))
    mode = resolve_mode(config, backend.supports_logprobs)
    if templates is None:  # direct vs reasoning answers only where answers are sampled
        templates = SENSITIVITY_TEMPLATES + (("reasoning",) if mode == "sample" else ())
    if len(templates) < 2:
        raise ValuescopeError("sensitivity needs at least 2 templates to compare")
    chosen = [get_template(t) for t in templates]
    check_templates(chosen, mode)
    n = len(outcomes)
    budget = plan_budget(config.model_copy(update={"design": "random"}), n, 0)
    out = prepare_out_dir(Path(config.out))
    with run_dir_lock(out):  # a second run on the same directory fails at once
        return _ask_and_compare(config, outcomes, backend, chosen, mode, budget, out, progress)


def _ask_and_compare(
    config: RunConfig,
    outcomes: OutcomeSet,
    backend: Backend,
    chosen: list[Template],
    mode: str,
    budget: int,
    out: Path,
    progress: Progress,
) -> SensitivityResult:
    """The asking, fitting and writing of `sensitivity`, under the directory lock."""
    n = len(outcomes)
    rng = np.random.default_rng(config.seed)
    start, _ = split_start(n, rng, 0)
    extra = decode(sample_new_codes(n, budget - len(start), pair_codes(start, n), rng), n)
    pairs = np.concatenate([start, extra])
    settings = elicit_settings(config, mode)
    per_pair = 2 * (settings.samples if mode == "sample" else 1)
    progress.start(len(pairs) * per_pair * len(chosen), "asking under each template")
    answers = {}
    with ResponseCache(out / "responses.sqlite") as cache:
        for template in chosen:
            answers[template.name] = elicit_pairs(
                backend, outcomes.texts, pairs, template, settings, cache, progress.advance
            )
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
        [[spearmanr(means[a], means[b])[0] for b in means] for a in means],
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
        others = [spearmanr(means[name], means[o])[0] for o in names if o != name]
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
                "spearman_with_pooled": float(spearmanr(means[name], pooled)[0]),
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
