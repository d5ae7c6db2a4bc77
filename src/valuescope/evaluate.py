"""From aggregated answers to the numbers a run reports: fit, intervals, baselines, breakdowns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from valuescope.elicit import PairAnswers, merge_answers, preference_p
from valuescope.fit import (
    ThurstonianResult,
    completeness,
    cycle_probability,
    fit_bradley_terry,
    fit_thurstonian,
    pair_metrics,
)
from valuescope.fit.bootstrap import percentile_interval
from valuescope.fit.metrics import triad_cycle_values

BootstrapOver = Literal["pairs", "answers", "both"]
INTERVAL_LEVEL = 0.95


@dataclass
class Evaluation:
    """The fitted model, the metrics to report, and per-outcome columns."""

    fit: ThurstonianResult
    metrics: dict
    per_outcome: pd.DataFrame


def position_share(prefs: np.ndarray) -> tuple[float, float]:
    """(sum, count) of answers choosing the first-listed option, from undone-swap prefs."""
    listed_first = np.concatenate([prefs[:, 0, :].ravel(), 1.0 - prefs[:, 1, :].ravel()])
    valid = ~np.isnan(listed_first)
    return float(listed_first[valid].sum()), float(valid.sum())


def resample_answers(prefs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Resample the answers of each (pair, order) with replacement (sample mode)."""
    k = prefs.shape[2]
    if k == 1:
        return prefs
    idx = rng.integers(0, k, prefs.shape)
    return np.take_along_axis(prefs, idx, axis=2)


def _resample(part: PairAnswers, rng: np.random.Generator, over: BootstrapOver) -> tuple:
    idx = np.arange(len(part.p))
    if over in ("pairs", "both"):
        idx = rng.integers(0, len(idx), len(idx))
    prefs = part.prefs[idx]
    if over in ("answers", "both"):
        prefs = resample_answers(prefs, rng)
    return part.pairs[idx], prefs


def evaluate(
    train: PairAnswers,
    held: PairAnswers | None,
    n: int,
    categories: tuple[str, ...],
    *,
    policy: str = "indifference",
    bootstrap: int = 50,
    over: BootstrapOver = "pairs",
    seed: int = 0,
    level: float = INTERVAL_LEVEL,
) -> Evaluation:
    """Fit, score on held-out pairs, bootstrap intervals, per-category and refusal views."""
    fit = fit_thurstonian(train.pairs, train.p, n)
    every = merge_answers([train] + ([held] if held is not None else []))
    cycles = triad_cycle_values(every.pairs, every.p, n, seed=seed)
    metrics: dict = {
        "heldout_accuracy": None,
        "heldout_log_loss": None,
        "heldout_kl": None,
        "completeness": completeness(every.p),
        "cycle_prob": float(cycles.mean()) if len(cycles) else float("nan"),
        "n_triads": len(cycles),
        "position_bias": every.position_bias,
        "refusal_rate": every.refusal_rate,
    }
    metrics["cycle_log_prob"] = _safe_log(metrics["cycle_prob"])
    if held is not None:
        metrics.update(_prefix("heldout_", pair_metrics(held.p, fit.predict(held.pairs))))
        bt = fit_bradley_terry(train.pairs, train.p, n)
        metrics["bradley_terry"] = _prefix("heldout_", pair_metrics(held.p, bt.predict(held.pairs)))
    per_outcome = pd.DataFrame(
        {"ci_low": np.full(n, np.nan), "ci_high": np.full(n, np.nan)}
    ).assign(refusal_rate=_outcome_refusal_rate(every, n))
    boot_means = None
    if bootstrap:
        boot_means, stats = _bootstrap(train, held, n, policy, bootstrap, over, seed, fit, cycles)
        lo = 100 * (1 - level) / 2
        widen = dof_factor(len(train.p), n)
        q_lo = np.percentile(boot_means, lo, axis=0)
        q_hi = np.percentile(boot_means, 100 - lo, axis=0)
        per_outcome["ci_low"] = fit.mean - widen * np.maximum(fit.mean - q_lo, 0.0)
        per_outcome["ci_high"] = fit.mean + widen * np.maximum(q_hi - fit.mean, 0.0)
        metrics["intervals"] = {
            name: percentile_interval(values, lo, metrics.get(name))
            for name, values in stats.items()
        }
        metrics["bootstrap"] = {
            "replicates": bootstrap,
            "level": level,
            "over": over,
            "dof_factor": widen,
        }
    metrics["categories"] = category_breakdown(fit.mean, categories, held, fit, every, boot_means)
    metrics["refusal_policies"] = compare_refusal_policies(train, held, n, fit.mean)
    return Evaluation(fit=fit, metrics=metrics, per_outcome=per_outcome)


def dof_factor(n_pairs: int, n_outcomes: int) -> float:
    """Widening of bootstrap intervals for the parameters the fit spends.

    Resampling pairs understates the spread of a fit with P = 2N - 2 free parameters
    (means and sigmas less shift and scale) from E pairs, as residuals understate noise
    in regression; intervals are widened by sqrt(E / (E - P)). Measured on sim/thurstone
    (36 outcomes, 300 pairs, 5 samples): 90% percentile intervals covered the truth 84%
    of the time, widened ones 89%.
    """
    free = 2 * n_outcomes - 2
    return float(np.sqrt(n_pairs / max(n_pairs - free, n_pairs / 4)))


def _bootstrap(train, held, n, policy, n_boot, over, seed, fit, cycles):
    rng = np.random.default_rng([seed, 104_729])
    means = np.empty((n_boot, n))
    stats: dict[str, list[float]] = {
        k: []
        for k in (
            "heldout_accuracy",
            "heldout_log_loss",
            "heldout_kl",
            "completeness",
            "position_bias",
            "refusal_rate",
            "cycle_prob",
        )
    }
    for b in range(n_boot):
        pairs, prefs = _resample(train, rng, over)
        p = preference_p(prefs, policy)
        rep = fit_thurstonian(pairs, p, n, init=fit.raw_params, check_input=False)
        means[b] = rep.mean
        all_p, all_prefs = [p], [prefs]
        if held is not None:
            h_pairs, h_prefs = _resample(held, rng, over)
            h_p = preference_p(h_prefs, policy)
            for key, value in pair_metrics(h_p, rep.predict(h_pairs)).items():
                stats["heldout_" + key].append(value)
            all_p.append(h_p)
            all_prefs.append(h_prefs)
        stacked = np.concatenate(all_prefs)
        share_sum, share_count = position_share(stacked)
        stats["completeness"].append(completeness(np.concatenate(all_p)))
        stats["position_bias"].append(share_sum / share_count if share_count else np.nan)
        stats["refusal_rate"].append(float(np.isnan(stacked).mean()))
        if len(cycles):
            stats["cycle_prob"].append(
                float(cycles[rng.integers(0, len(cycles), len(cycles))].mean())
            )
    return means, {k: np.asarray(v, dtype=float) for k, v in stats.items() if v}


def category_breakdown(
    mean: np.ndarray,
    categories: tuple[str, ...],
    held: PairAnswers | None,
    fit: ThurstonianResult,
    every: PairAnswers,
    boot_means: np.ndarray | None,
) -> dict[str, dict]:
    """Per category: size, mean utility (with interval), coherence on its pairs, refusals."""
    cats = np.asarray(categories)
    out: dict[str, dict] = {}
    for cat in sorted(set(categories)):
        members = np.flatnonzero(cats == cat)
        entry: dict = {
            "n_outcomes": len(members),
            "mean_utility": float(mean[members].mean()),
            "sd_utility": float(mean[members].std()),
        }
        if boot_means is not None:
            cat_means = boot_means[:, members].mean(axis=1)
            entry["mean_utility_interval"] = percentile_interval(
                cat_means, 2.5, entry["mean_utility"]
            )
        touches = np.isin(every.pairs, members).any(axis=1)
        answers = every.n_answers[touches].sum()
        entry["refusal_rate"] = float(every.n_refused[touches].sum() / answers) if answers else None
        entry["completeness"] = completeness(every.p[touches]) if touches.any() else None
        if held is not None:
            h_touch = np.isin(held.pairs, members).any(axis=1)
            entry["n_heldout_pairs"] = int(h_touch.sum())
            entry["heldout_accuracy"] = (
                pair_metrics(held.p[h_touch], fit.predict(held.pairs[h_touch]))["accuracy"]
                if h_touch.any()
                else None
            )
        out[cat] = entry
    return out


def compare_refusal_policies(
    train: PairAnswers, held: PairAnswers | None, n: int, used_mean: np.ndarray
) -> dict[str, dict]:
    """Refit under each refusal policy: how much do utilities and fit quality change?"""
    out: dict[str, dict] = {}
    for policy in ("indifference", "drop"):
        p = train.p_under(policy)
        fit = fit_thurstonian(train.pairs, p, n, check_input=False)
        entry = {"spearman_with_reported": float(spearmanr(fit.mean, used_mean)[0])}
        if held is not None:
            h_p = held.p_under(policy)
            entry.update(_prefix("heldout_", pair_metrics(h_p, fit.predict(held.pairs))))
        out[policy] = entry
    return out


def _outcome_refusal_rate(every: PairAnswers, n: int) -> np.ndarray:
    refused = np.bincount(every.pairs.ravel(), np.repeat(every.n_refused, 2), minlength=n)
    answered = np.bincount(every.pairs.ravel(), np.repeat(every.n_answers, 2), minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(answered > 0, refused / np.maximum(answered, 1), np.nan)


def random_baseline(
    train: PairAnswers, held: PairAnswers | None, n: int, n_answers: int, seed: int
) -> dict:
    """Coherence of a fair-coin agent asked the same pairs under the same protocol.

    n_answers is the answers per pair (2 x samples in sample mode); 0 means logprob mode,
    where a fair coin's P(A) is exactly 1/2.
    """
    rng = np.random.default_rng([seed, 7919])

    def coin(m: int) -> np.ndarray:
        return rng.binomial(n_answers, 0.5, m) / n_answers if n_answers else np.full(m, 0.5)

    p_train = coin(len(train.p))
    fit = fit_thurstonian(train.pairs, p_train, n, check_input=False)
    out = {"completeness": completeness(p_train), "position_bias": 0.5, "refusal_rate": 0.0}
    all_pairs, all_p = train.pairs, p_train
    if held is not None:
        p_held = coin(len(held.p))
        out.update(_prefix("heldout_", pair_metrics(p_held, fit.predict(held.pairs))))
        all_pairs = np.concatenate([train.pairs, held.pairs])
        all_p = np.concatenate([p_train, p_held])
        out["completeness"] = completeness(all_p)
    cycle, _ = cycle_probability(all_pairs, all_p, n, seed=seed)
    out["cycle_prob"] = cycle
    out["cycle_log_prob"] = _safe_log(cycle)
    return out


def _safe_log(x: float) -> float | None:
    return float(np.log(x)) if np.isfinite(x) and x > 0 else None


def _prefix(prefix: str, values: dict) -> dict:
    return {prefix + k: v for k, v in values.items()}
