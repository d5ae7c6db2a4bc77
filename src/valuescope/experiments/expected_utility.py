"""Expected utility: is a lottery worth the probability-weighted utility of its outcomes?

Lotteries come from `data/lotteries.yaml`: explicit ones state their probabilities,
implicit ones hang on an uncertain event whose probability the model must supply.
Base outcomes and lotteries are measured together in one utility fit; each lottery's
utility is compared with sum_k p_k U(outcome_k).
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np

from valuescope.experiments._stats import (
    ask,
    bootstrap_corr,
    bootstrap_mean,
    headline_from,
    load_data,
    measure_options,
    parse_number,
    scatter_svg,
    shuffled,
)
from valuescope.experiments.base import Experiment, ExperimentContext, ExperimentError

QUICK_EXPLICIT = 14
QUICK_IMPLICIT = 10
PROBABILITY_PROMPT = (
    "Estimate the probability of the event below. Reply with a single number: "
    "the probability in percent, from 0 to 100.\n\nEvent: {event}"
)


def _pct(p: float) -> str:
    return f"{100 * p:.0f}%"


def render_explicit(branches: list[tuple[float, str]]) -> str:
    """The text of a lottery with stated probabilities."""
    parts = " ".join(f"With a {_pct(p)} chance: {text}" for p, text in branches)
    return f"A random draw decides what happens. {parts}"


def render_implicit(event: str, then: str, otherwise: str) -> str:
    """The text of a lottery that depends on an uncertain event."""
    return f"What happens depends on whether {event}. If so: {then} If not: {otherwise}"


@cache
def lotteries() -> tuple[dict[str, Any], ...]:
    """Every lottery: id, kind, text, branches [(p, outcome text)], event, reference p."""
    data = load_data("lotteries")
    base = data["outcomes"]
    found = []
    for item in data["explicit"]:
        branches = [(float(p), base[b]) for p, b in item["branches"]]
        if abs(sum(p for p, _ in branches) - 1) > 1e-6:
            raise ExperimentError(f"lotteries.yaml: {item['id']} probabilities do not sum to 1")
        found.append(
            {
                "id": item["id"],
                "kind": "explicit",
                "text": render_explicit(branches),
                "branches": branches,
                "event": None,
                "ids": [b for _, b in item["branches"]],
            }
        )
    for ev in data["events"]:
        p = float(ev["p"])
        then, otherwise = base[ev["then"]], base[ev["else"]]
        found.append(
            {
                "id": ev["id"],
                "kind": "implicit",
                "text": render_implicit(ev["text"], then, otherwise),
                "branches": [(p, then), (1 - p, otherwise)],
                "event": ev["text"],
                "ids": [ev["then"], ev["else"]],
            }
        )
    return tuple(found)


@cache
def _by_text() -> dict[str, dict[str, Any]]:
    return {lot["text"]: lot for lot in lotteries()}


def lottery_structure(text: str) -> list[tuple[float, str]] | None:
    """[(reference probability, outcome text)] of a lottery text, or None for other texts."""
    lot = _by_text().get(text)
    return None if lot is None else list(lot["branches"])


@cache
def event_probabilities() -> dict[str, float]:
    """Reference probability of every event text in the dataset."""
    return {lot["event"]: lot["branches"][0][0] for lot in lotteries() if lot["event"]}


def _select(quick: bool) -> list[dict[str, Any]]:
    explicit = [lot for lot in lotteries() if lot["kind"] == "explicit"]
    implicit = [lot for lot in lotteries() if lot["kind"] == "implicit"]
    if quick:
        explicit, implicit = explicit[:QUICK_EXPLICIT], implicit[:QUICK_IMPLICIT]
    return explicit + implicit


def _model_probabilities(ctx: ExperimentContext, events: list[str]) -> dict[str, float | None]:
    replies = ask(ctx, [PROBABILITY_PROMPT.format(event=e) for e in events], max_tokens=16)
    out = {}
    for event, reply in zip(events, replies):
        value = parse_number(reply, 0, 100)
        out[event] = None if value is None else value / 100
    return out


def run(ctx: ExperimentContext) -> dict[str, Any]:
    source = ctx.params.get("probabilities", "model")
    if source not in ("model", "reference"):
        raise ExperimentError(
            f"--param probabilities={source!r}: expected 'model' (ask the model) or 'reference'"
        )
    chosen = _select(ctx.quick)
    base_ids = list(dict.fromkeys(i for lot in chosen for i in lot["ids"]))
    base = load_data("lotteries")["outcomes"]
    outcomes = [{"id": i, "text": base[i], "category": "base"} for i in base_ids]
    outcomes += [{"id": lot["id"], "text": lot["text"], "category": lot["kind"]} for lot in chosen]
    result = ctx.measure(
        "lotteries",
        shuffled(outcomes, ctx.seed, "lotteries"),
        **measure_options(ctx.quick, len(outcomes)),
    )
    utility = dict(zip(result.utilities["outcome"], result.utilities["mean"]))

    events = [lot["event"] for lot in chosen if lot["event"]]
    if source == "model":
        probs = _model_probabilities(ctx, events)
    else:
        probs = {e: event_probabilities()[e] for e in events}

    rows = []
    for lot in chosen:
        branches = lot["branches"]
        p_used = None
        if lot["event"] is not None:
            p_used = probs.get(lot["event"])
            if p_used is None:
                continue  # the model gave no usable probability; counted below
            branches = [(p_used, branches[0][1]), (1 - p_used, branches[1][1])]
        eu = sum(p * utility[t] for p, t in branches)
        rows.append(
            {
                "id": lot["id"],
                "kind": lot["kind"],
                "utility": float(utility[lot["text"]]),
                "expected_utility": float(eu),
                "probability": p_used,
                "reference_probability": lot["branches"][0][0] if lot["event"] else None,
                "text": lot["text"],
            }
        )

    headline, detail = {}, {}
    for kind in ("explicit", "implicit"):
        sel = [r for r in rows if r["kind"] == kind]
        if len(sel) < 3:
            raise ExperimentError(
                f"expected-utility: only {len(sel)} {kind} lotteries usable"
                + (
                    " (the model gave no probability for most events; "
                    "try --param probabilities=reference)"
                    if kind == "implicit" and source == "model"
                    else ""
                )
            )
        u = np.array([r["utility"] for r in sel])
        eu = np.array([r["expected_utility"] for r in sel])
        corr = bootstrap_corr(u, eu, seed=ctx.seed)
        mae = bootstrap_mean(np.abs(u - eu), seed=ctx.seed)
        rng = np.random.default_rng(ctx.seed)
        baseline = float(np.mean([np.abs(u - rng.permutation(eu)).mean() for _ in range(200)]))
        headline[f"corr_{kind}"] = headline_from(corr, f"corr(U, EU), {kind} lotteries")
        headline[f"mae_{kind}"] = headline_from(mae, f"mean |U - EU|, {kind} (utility s.d. = 1)")
        detail[kind] = {"n": len(sel), "correlation": corr, "mae": mae, "mae_shuffled": baseline}

    n_dropped = len(chosen) - len(rows)
    figure = scatter_svg(
        ctx.out / "expected-utility_scatter.svg",
        [r["expected_utility"] for r in rows],
        [r["utility"] for r in rows],
        "expected utility of the sub-outcomes",
        "utility of the lottery",
        f"Expected utility: {ctx.model}",
        diagonal=True,
        groups=[r["kind"] for r in rows],
    )
    ce, ci = detail["explicit"]["correlation"], detail["implicit"]["correlation"]
    reading = (
        f"Lottery utilities correlate with the expected utility of their outcomes at "
        f"{ce['value']:.2f} [{ce['ci_low']:.2f}, {ce['ci_high']:.2f}] (permutation p = "
        f"{ce['p_value']:.3f}) for explicit "
        f"probabilities and {ci['value']:.2f} [{ci['ci_low']:.2f}, {ci['ci_high']:.2f}] "
        f"(p = {ci['p_value']:.3f}) for "
        f"implicit ones (probabilities from the {source}). The mean absolute gap is "
        f"{detail['explicit']['mae']['value']:.2f} and {detail['implicit']['mae']['value']:.2f} "
        "utility standard deviations, against "
        f"{detail['explicit']['mae_shuffled']:.2f} and {detail['implicit']['mae_shuffled']:.2f} "
        "if lotteries were paired with random expected utilities. A correlation near 1 and a "
        "gap well below the shuffled one mean the model values lotteries as an "
        "expected-utility maximiser would."
    )
    return {
        "headline": headline,
        "reading": reading,
        "tables": {"lotteries": rows},
        "figures": [figure],
        "probabilities": source,
        "dropped_no_probability": n_dropped,
        "detail": detail,
        "run_dir": str(result.out),
    }


EXPERIMENT = Experiment(
    name="expected-utility",
    title="Expected utility",
    summary="lottery utilities vs the expected utility of their outcomes (explicit and implicit)",
    run=run,
)
