"""Instrumental values: is a state worth the expected utility of what follows it?

Multi-step Markov processes from `data/markov.yaml` (a start state, then three steps of
states with transition probabilities). Every state of every chosen process is measured
in one utility fit. Per process, utilities are z-scored over its states and checked for
Bellman consistency, V(s) = sum_s' P(s'|s) V(s') (no reward before the terminal step):
the one-step Bellman error and the loss of the best-fitting Bellman-consistent values
(`_markov`). The control is each process's "unnatural" twin: the same states and the same
measured utilities with the states moved to other steps, so its transitions make no
causal sense. Instrumental values show as a lower error on the natural processes than
on their twins; the headline gap (twin minus natural, paired by process) has a bootstrap
interval over processes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import wilcoxon

from valuescope.common.seeds import seeded_order
from valuescope.experiments import _markov
from valuescope.experiments._markov import Process
from valuescope.experiments._stats import (
    bootstrap_corr,
    bootstrap_mean,
    headline_from,
    measure_options,
    scatter_svg,
)
from valuescope.experiments.base import Experiment, ExperimentContext, ExperimentError
from valuescope.experiments.params import read_params

QUICK_PROCESSES = 6
MIN_PROCESSES = 3
P_LEVEL = 0.05


def _chosen(ctx: ExperimentContext) -> list[Process]:
    every = list(_markov.processes())
    default = QUICK_PROCESSES if ctx.quick else len(every)
    given = read_params("instrumental", ctx.params).processes  # a whole number
    n = default if given is None else given
    if not MIN_PROCESSES <= n <= len(every):
        raise ExperimentError(
            f"--param processes={ctx.params.get('processes')!r}: expected a whole number "
            f"from {MIN_PROCESSES} to {len(every)}"
        )
    return every[:n]


def _outcomes(chosen: list[Process]) -> list[dict[str, Any]]:
    return [
        {"id": f"{proc.id}.{k}.{i}", "text": text, "category": f"step {k}"}
        for proc in chosen
        for k, step in enumerate(proc.steps)
        for i, text in enumerate(step, 1)
    ]


def _process_row(proc: Process, utility: dict[str, float]) -> dict[str, Any]:
    z = _markov.zscores(proc, utility)
    twin = _markov.unnatural(proc)
    z_twin = _markov.zscores(twin, utility)
    matched = _markov.valence_twin(proc)
    return {
        "id": proc.id,
        "bellman_error_natural": _markov.bellman_error(proc, z),
        "bellman_error_unnatural": _markov.bellman_error(twin, z_twin),
        "fitted_loss_natural": _markov.fitted_loss(proc, z),
        "fitted_loss_unnatural": _markov.fitted_loss(twin, z_twin),
        "bellman_error_valence": _markov.bellman_error(matched, _markov.zscores(matched, utility)),
        "start": proc.steps[0][0],
    }


def _state_rows(proc: Process, utility: dict[str, float], kind: str) -> list[dict[str, Any]]:
    chosen = proc if kind == "natural" else _markov.unnatural(proc)
    here, ahead = _markov.one_step(chosen, _markov.zscores(chosen, utility))
    texts = [s for step in chosen.steps[:-1] for s in step]
    return [
        {"process": proc.id, "kind": kind, "state": t, "z": float(a), "expected_next_z": float(b)}
        for t, a, b in zip(texts, here, ahead)
    ]


def _paired(rows: list[dict], key: str, seed: int, twin: str = "unnatural") -> dict[str, dict]:
    """Bootstrap means of natural, twin and their paired gap, with a Wilcoxon p-value."""
    nat = np.array([r[f"{key}_natural"] for r in rows])
    unn = np.array([r[f"{key}_{twin}"] for r in rows])
    gap = bootstrap_mean(unn - nat, seed=seed)
    gap["p_value"] = 1.0 if np.allclose(unn, nat) else float(wilcoxon(unn, nat).pvalue)
    return {
        "natural": bootstrap_mean(nat, seed=seed),
        "unnatural": bootstrap_mean(unn, seed=seed),
        "gap": gap,
    }


def verdict(gap: dict[str, float]) -> str:
    """`instrumental` when the natural processes fit clearly better than their twins,
    `reversed` when the twins fit clearly better, else `none`."""
    if gap["p_value"] < P_LEVEL and gap["ci_low"] > 0:
        return "instrumental"
    if gap["p_value"] < P_LEVEL and gap["ci_high"] < 0:
        return "reversed"
    return "none"


def _reading(bellman: dict, fitted: dict, matched: dict, call: str, n: int) -> str:
    nat, unn, gap = bellman["natural"], bellman["unnatural"], bellman["gap"]
    meaning = {
        "instrumental": "states are valued for what they lead to (instrumental values)",
        "reversed": "the utilities fit the scrambled transitions better than the real ones",
        "none": "no sign that states are valued for what they lead to",
    }[call]
    return (
        f"Over {n} processes the one-step Bellman error is {nat['value']:.2f} "
        f"[{nat['ci_low']:.2f}, {nat['ci_high']:.2f}] on the natural processes and "
        f"{unn['value']:.2f} [{unn['ci_low']:.2f}, {unn['ci_high']:.2f}] on their unnatural "
        f"twins (gap {gap['value']:+.2f} [{gap['ci_low']:+.2f}, {gap['ci_high']:+.2f}], "
        f"Wilcoxon p = {gap['p_value']:.3f}); the fitted-values loss gap is "
        f"{fitted['gap']['value']:+.2f} [{fitted['gap']['ci_low']:+.2f}, "
        f"{fitted['gap']['ci_high']:+.2f}]. Verdict: {call}: {meaning}. Against twins that "
        f"keep each state's better/worse place the gap is {matched['value']:+.2f} "
        f"[{matched['ci_low']:+.2f}, {matched['ci_high']:+.2f}] (p = {matched['p_value']:.3f}): "
        + (
            "the utilities follow the processes beyond how good each state sounds. "
            if verdict(matched) == "instrumental"
            else "not shown to go beyond how good each state sounds. "
        )
        + "Errors are in standard deviations of the process's utilities."
    )


def run(ctx: ExperimentContext) -> dict[str, Any]:
    chosen = _chosen(ctx)
    outcomes = _outcomes(chosen)
    result = ctx.measure(
        "markov",
        seeded_order(outcomes, ctx.seed, "markov"),
        **measure_options(ctx.quick, len(outcomes)),
    )
    utility = {
        str(t): float(u)
        for t, u in zip(result.utilities["outcome"], result.utilities["mean"], strict=True)
    }
    rows = [_process_row(proc, utility) for proc in chosen]
    bellman = _paired(rows, "bellman_error", ctx.seed)
    fitted = _paired(rows, "fitted_loss", ctx.seed)
    valence = _paired(rows, "bellman_error", ctx.seed, twin="valence")
    states = [r for proc in chosen for r in _state_rows(proc, utility, "natural")]
    twins = [r for proc in chosen for r in _state_rows(proc, utility, "unnatural")]
    corr = bootstrap_corr(
        [r["z"] for r in states], [r["expected_next_z"] for r in states], ctx.seed
    )
    corr_twin = bootstrap_corr(
        [r["z"] for r in twins], [r["expected_next_z"] for r in twins], ctx.seed
    )
    call = verdict(bellman["gap"])
    figure = scatter_svg(
        ctx.out / "instrumental_scatter.svg",
        [r["expected_next_z"] for r in states + twins],
        [r["z"] for r in states + twins],
        "expected z-utility of the next states",
        "z-utility of the state",
        f"Instrumental values: {ctx.model}",
        diagonal=True,
        groups=[r["kind"] for r in states + twins],
    )
    return {
        "headline": {
            "bellman_error_natural": headline_from(bellman["natural"], "Bellman error, natural"),
            "bellman_error_unnatural": headline_from(
                bellman["unnatural"], "Bellman error, unnatural twins"
            ),
            "bellman_gap": headline_from(bellman["gap"], "Bellman error gap (twin - natural)"),
            "fitted_loss_natural": headline_from(fitted["natural"], "fitted loss, natural"),
            "fitted_loss_unnatural": headline_from(
                fitted["unnatural"], "fitted loss, unnatural twins"
            ),
            "fitted_gap": headline_from(fitted["gap"], "fitted loss gap (twin - natural)"),
            "bellman_gap_valence": headline_from(
                valence["gap"], "Bellman error gap (valence-matched twin - natural)"
            ),
            "corr": headline_from(corr, "corr(z U(state), expected z U(next)), natural"),
        },
        "verdict": call,
        "beyond_valence": verdict(valence["gap"]) == "instrumental",
        "reading": _reading(bellman, fitted, valence["gap"], call, len(rows)),
        "tables": {"processes": rows, "states": states + twins},
        "detail": {
            "bellman_error": bellman,
            "fitted_loss": fitted,
            "valence_control": valence,
            "correlation": corr,
            "correlation_unnatural": corr_twin,
            "processes": len(rows),
            "states": len(outcomes),
        },
        "figures": [figure],
        "run_dir": str(result.out),
    }


EXPERIMENT = Experiment(
    name="instrumental",
    title="Instrumental values",
    summary="Bellman consistency of state utilities in multi-step processes vs scrambled twins",
    run=run,
)
