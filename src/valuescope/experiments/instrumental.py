"""Instrumental values: is a start state worth the expected utility of what it leads to?

Two-step processes from `data/markov.yaml`: a start state leads to later states with
given transition probabilities. Start and later states are measured in one utility fit;
U(start) is compared with sum_k P(start -> k) U(k).
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np

from valuescope.experiments._stats import (
    bootstrap_corr,
    bootstrap_mean,
    headline_from,
    load_data,
    measure_options,
    scatter_svg,
    shuffled,
)
from valuescope.experiments.base import Experiment, ExperimentContext, ExperimentError

QUICK_PROCESSES = 16


@cache
def processes() -> tuple[dict[str, Any], ...]:
    """Every process: id, start text, next [(probability, state text)]."""
    found = []
    for item in load_data("markov")["processes"]:
        nxt = [(float(p), str(t)) for p, t in item["next"]]
        if abs(sum(p for p, _ in nxt) - 1) > 1e-6:
            raise ExperimentError(f"markov.yaml: {item['id']} probabilities do not sum to 1")
        found.append({"id": item["id"], "start": item["start"], "next": nxt})
    return tuple(found)


@cache
def _by_start() -> dict[str, list[tuple[float, str]]]:
    return {p["start"]: p["next"] for p in processes()}


def markov_structure(text: str) -> list[tuple[float, str]] | None:
    """[(transition probability, later state)] of a start-state text, or None."""
    found = _by_start().get(text)
    return None if found is None else list(found)


def run(ctx: ExperimentContext) -> dict[str, Any]:
    chosen = list(processes())
    if ctx.quick:
        chosen = chosen[:QUICK_PROCESSES]
    outcomes = [{"id": p["id"], "text": p["start"], "category": "start"} for p in chosen]
    outcomes += [
        {"id": f"{p['id']}.{k}", "text": t, "category": "later"}
        for p in chosen
        for k, (_, t) in enumerate(p["next"], 1)
    ]
    result = ctx.measure(
        "markov",
        shuffled(outcomes, ctx.seed, "markov"),
        **measure_options(ctx.quick, len(outcomes)),
    )
    utility = dict(zip(result.utilities["outcome"], result.utilities["mean"]))
    rows = [
        {
            "id": p["id"],
            "start_utility": float(utility[p["start"]]),
            "expected_next_utility": float(sum(q * utility[t] for q, t in p["next"])),
            "start": p["start"],
        }
        for p in chosen
    ]
    u = np.array([r["start_utility"] for r in rows])
    eu = np.array([r["expected_next_utility"] for r in rows])
    corr = bootstrap_corr(u, eu, seed=ctx.seed)
    mae = bootstrap_mean(np.abs(u - eu), seed=ctx.seed)
    figure = scatter_svg(
        ctx.out / "instrumental_scatter.svg",
        eu,
        u,
        "expected utility of the later states",
        "utility of the start state",
        f"Instrumental values: {ctx.model}",
        diagonal=True,
    )
    reading = (
        f"Start-state utilities correlate with the expected utility of the states they lead "
        f"to at {corr['value']:.2f} [{corr['ci_low']:.2f}, {corr['ci_high']:.2f}] "
        f"(permutation p = {corr['p_value']:.3f}) over "
        f"{len(rows)} processes; the mean absolute gap is {mae['value']:.2f} utility standard "
        "deviations. A high correlation means the model values situations for what they "
        "are likely to bring about (instrumental values); near 0 means it does not."
    )
    return {
        "headline": {
            "corr": headline_from(corr, "corr(U(start), expected U(next))"),
            "mae": headline_from(mae, "mean |U(start) - expected U(next)|"),
        },
        "reading": reading,
        "tables": {"processes": rows},
        "detail": {"correlation": corr, "mae": mae},
        "figures": [figure],
        "run_dir": str(result.out),
    }


EXPERIMENT = Experiment(
    name="instrumental",
    title="Instrumental values",
    summary="start-state utilities vs the expected utility of the states they lead to",
    run=run,
)
