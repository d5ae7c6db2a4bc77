"""Expected utility: is a lottery worth the probability-weighted utility of its outcomes?

Lotteries come from `data/lotteries.yaml`. Explicit ones state their probabilities over
2-3 base outcomes; implicit ones are real uncertain events (weather, sports, elections,
markets...) split into sub-outcomes, whose probabilities the model is asked for (and,
separately, taken from the dataset's base rates). Base outcomes, sub-outcomes and
lotteries are measured together in one utility fit. Statistics per kind of lottery:

- correlation and mean absolute error of z-scored U(lottery) against z-scored
  EU = sum_k p_k U(outcome_k), as the paper;
- the share of lottery pairs whose order EU predicts;
- probability sensitivity: regress U(lottery) = a + b_EU EU + b_eq EQ, where EQ is the
  equal-weight mean of the outcomes' utilities; sensitivity w = b_EU / (b_EU + b_eq),
  the weight of EU in U = a + s (w EU + (1 - w) EQ). 1: only the probability-weighted
  value matters; 0: probabilities are ignored; negative: probability counts backwards.

Intervals are percentile bootstraps over groups of lotteries that share their outcomes
(explicit) or over events (implicit), seeded.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np

from valuescope import stats
from valuescope.common.seeds import seeded_order
from valuescope.experiments._stats import (
    ask,
    bootstrap_corr,
    bootstrap_mean,
    headline,
    headline_from,
    load_data,
    measure_options,
    parse_number,
    scatter_svg,
)
from valuescope.experiments.base import Experiment, ExperimentContext, ExperimentError
from valuescope.experiments.params import read_params

# --quick: the first groups of each design and the first events (whole groups, so the
# equal-weight and expected-utility predictions stay separable)
QUICK_TWO_GROUPS = 4
QUICK_THREE_GROUPS = 3
QUICK_EVENTS = 4
N_BOOT = 1000
LEVEL = 0.9
# Measured on the embedded Qwen2.5-Coder-1.5B: asked for "a single number" it starts to
# reason ("To estimate the probability that ...") and no number comes in 16 tokens; asked
# for "only" the number with an example and "no explanation", it answers with a number.
PROBABILITY_PROMPT = (
    "{setup}\n\nHow likely is it that it turns out as described below? Answer with only the "
    "probability in percent, a single number from 0 to 100 (for example: 35), and no "
    "explanation.\n\nEvent: {event}"
)

Branches = list[tuple[float, str]]
_SOURCE = {"model": "the model's probabilities", "reference": "base-rate probabilities"}


def _pct(p: float) -> str:
    return f"{100 * p:.0f}%"


def render_explicit(branches: Branches) -> str:
    """The text of a lottery with stated probabilities."""
    parts = " ".join(f"With a {_pct(p)} chance: {text}" for p, text in branches)
    return f"A random draw decides what happens. {parts}"


def _check_sum(where: str, branches: Branches) -> None:
    if abs(sum(p for p, _ in branches) - 1) > 1e-6 or any(not 0 < p < 1 for p, _ in branches):
        raise ExperimentError(f"lotteries.yaml: {where} probabilities must lie in (0, 1), sum 1")


@cache
def lotteries() -> tuple[dict[str, Any], ...]:
    """Every lottery: id, kind, group, text, branches [(p, outcome text)], event, domain.

    For an implicit lottery `text` (= `event`) describes the uncertain event and the
    branches are its sub-outcomes with the dataset's base-rate probabilities.
    """
    data = load_data("lotteries")
    base = data["outcomes"]
    found = []
    for item in data["explicit"]:
        branches = [(float(p), base[b]) for p, b in item["branches"]]
        _check_sum(item["id"], branches)
        found.append(
            {
                "id": item["id"],
                "kind": "explicit",
                "group": item["group"],
                "text": render_explicit(branches),
                "branches": branches,
                "event": None,
                "domain": None,
            }
        )
    for ev in data["events"]:
        branches = [(float(p), str(t)) for p, t in ev["outcomes"]]
        _check_sum(ev["id"], branches)
        found.append(
            {
                "id": ev["id"],
                "kind": "implicit",
                "group": ev["id"],
                "text": ev["text"],
                "branches": branches,
                "event": ev["text"],
                "domain": ev["domain"],
            }
        )
    return tuple(found)


@cache
def _by_text() -> dict[str, dict[str, Any]]:
    return {lot["text"]: lot for lot in lotteries()}


def lottery_structure(text: str) -> Branches | None:
    """[(base-rate or stated probability, outcome text)] of a lottery text, else None."""
    lot = _by_text().get(text)
    return None if lot is None else list(lot["branches"])


@cache
def event_probabilities() -> dict[str, float]:
    """Base-rate probability of every sub-outcome of the implicit lotteries."""
    return {t: p for lot in lotteries() if lot["kind"] == "implicit" for p, t in lot["branches"]}


def select(quick: bool) -> list[dict[str, Any]]:
    """The lotteries an analysis uses: all, or whole groups and events for --quick."""
    explicit = [lot for lot in lotteries() if lot["kind"] == "explicit"]
    implicit = [lot for lot in lotteries() if lot["kind"] == "implicit"]
    if not quick:
        return explicit + implicit
    two = list(dict.fromkeys(x["group"] for x in explicit if len(x["branches"]) == 2))
    three = list(dict.fromkeys(x["group"] for x in explicit if len(x["branches"]) == 3))
    keep = set(two[:QUICK_TWO_GROUPS] + three[:QUICK_THREE_GROUPS])
    return [x for x in explicit if x["group"] in keep] + implicit[:QUICK_EVENTS]


# ---- the model's own probabilities ---------------------------------------------------


def elicit_probabilities(
    ctx: ExperimentContext, events: list[dict[str, Any]]
) -> tuple[dict[str, float | None], list[dict[str, Any]]]:
    """Ask the model the probability of every sub-outcome of `events`.

    Returns {sub-outcome text: raw probability in [0, 1] or None if the reply had no
    number in 0-100} and one row per sub-outcome (event, text, base rate, reply, parsed).
    """
    prompts, keys = [], []
    for lot in events:
        for p, sub in lot["branches"]:
            prompts.append(PROBABILITY_PROMPT.format(setup=lot["event"], event=sub))
            keys.append((lot["id"], sub, p))
    replies = ask(ctx, prompts, max_tokens=16)
    raw: dict[str, float | None] = {}
    rows = []
    for (event_id, sub, p), reply in zip(keys, replies):
        value = parse_number(reply, 0, 100)
        raw[sub] = None if value is None else value / 100
        rows.append(
            {
                "event": event_id,
                "outcome": sub,
                "base_rate": p,
                "reply": reply,
                "model_probability_raw": raw[sub],
            }
        )
    return raw, rows


def normalised(branches: Branches, raw: dict[str, float | None]) -> Branches | None:
    """The event's branches with the model's probabilities rescaled to sum to 1.

    None when a sub-outcome got no usable number or all got 0 (the event is dropped).
    """
    values = [raw.get(t) for _, t in branches]
    if any(v is None for v in values) or sum(values) <= 0:
        return None
    total = float(sum(values))
    return [(float(v) / total, t) for v, (_, t) in zip(values, branches)]


# ---- statistics (pure functions of arrays) -------------------------------------------


def zscore(x: np.ndarray) -> np.ndarray:
    sd = x.std()
    return (x - x.mean()) / sd if sd > 0 else x - x.mean()


def sensitivity(u: np.ndarray, eu: np.ndarray, eq: np.ndarray) -> float:
    """The weight w of EU in U = a + s (w EU + (1 - w) EQ), by least squares.

    From U = a + b_EU EU + b_eq EQ: s = b_EU + b_eq and w = b_EU / s. NaN when s <= 0
    (lottery utilities do not rise with their outcomes' utilities: no weight to read).
    """
    design = np.column_stack([np.ones_like(eu), eu, eq])
    (_, b_eu, b_eq), *_ = np.linalg.lstsq(design, u, rcond=None)
    slope = b_eu + b_eq
    return float(b_eu / slope) if slope > 1e-9 else float("nan")


def regression(u: np.ndarray, eu: np.ndarray, eq: np.ndarray) -> dict[str, float]:
    """The coefficients of U = a + b_EU EU + b_eq EQ and its R^2."""
    design = np.column_stack([np.ones_like(eu), eu, eq])
    coef, *_ = np.linalg.lstsq(design, u, rcond=None)
    resid = u - design @ coef
    ss = float(((u - u.mean()) ** 2).sum())
    r2 = 1 - float((resid**2).sum()) / ss if ss > 0 else float("nan")
    return {"intercept": float(coef[0]), "b_eu": float(coef[1]), "b_eq": float(coef[2]), "r2": r2}


def order_share(
    u: np.ndarray, pred: np.ndarray, ids: np.ndarray, within: np.ndarray | None = None
) -> float:
    """Share of lottery pairs (distinct ids) whose utility order `pred` gets right.

    A tie in `pred` counts 1/2 (it predicts neither order); pairs tied in `u` are left
    out. `within` (group labels) restricts the pairs to lotteries of the same group.
    """
    du = u[:, None] - u[None, :]
    dp = pred[:, None] - pred[None, :]
    upper = np.triu(np.ones(du.shape, dtype=bool), 1)
    mask = upper & (ids[:, None] != ids[None, :]) & (np.abs(du) > 1e-12)
    if within is not None:
        mask &= within[:, None] == within[None, :]
    if not mask.any():
        return float("nan")
    tie = np.abs(dp) <= 1e-9
    score = np.where(tie, 0.5, (np.sign(du) == np.sign(dp)).astype(float))
    return float(score[mask].mean())


def cluster_bootstrap(
    groups: np.ndarray, statistic: Callable[[np.ndarray], float], seed: int
) -> dict[str, float | None]:
    """`statistic(row indices)` with a seeded percentile bootstrap over groups of rows.

    Whole groups are resampled (lotteries over the same outcomes, or the sub-outcomes of
    one event, are not independent). Resamples where the statistic is undefined (e.g. no
    pair of distinct lotteries) are left out; `n_boot` says how many remained.
    """
    labels = list(dict.fromkeys(groups.tolist()))
    members = [np.flatnonzero(groups == g) for g in labels]
    value = statistic(np.arange(groups.size))
    out = {"value": value, "ci_low": None, "ci_high": None, "n_groups": len(labels), "n_boot": 0}
    if len(labels) < 3 or not np.isfinite(value):
        return out
    # whole groups are redrawn and the statistic is recomputed on their rows: a cluster
    # bootstrap, which scipy.stats.bootstrap (independent observations) does not do
    draws = stats.resample_indices(len(labels), N_BOOT, seed)
    reps = np.array([statistic(np.concatenate([members[k] for k in pick])) for pick in draws])
    ci = stats.percentile_interval(reps, LEVEL)
    if ci.low is not None:
        out.update(ci_low=ci.low, ci_high=ci.high, n_boot=int(np.isfinite(reps).sum()))
    return out


def analyse(rows: list[dict[str, Any]], eu_key: str, seed: int) -> dict[str, Any]:
    """Every statistic for one kind of lottery, with `eu_key` as the EU column."""
    u = np.array([r["utility"] for r in rows])
    eu = np.array([r[eu_key] for r in rows])
    eq = np.array([r["equal_weight"] for r in rows])
    groups = np.array([r["group"] for r in rows])
    ids = np.arange(len(rows))
    zu, zeu = zscore(u), zscore(eu)
    rng = np.random.default_rng(seed)
    shuffled_mae = np.mean([np.abs(zu - zscore(rng.permutation(eu))).mean() for _ in range(200)])

    def share(pred: np.ndarray, within: bool = False) -> Callable[[np.ndarray], float]:
        return lambda r: order_share(u[r], pred[r], ids[r], groups[r] if within else None)

    return {
        "n": len(rows),
        "n_groups": len(set(groups.tolist())),
        "correlation": bootstrap_corr(u, eu, seed=seed),
        "mae": bootstrap_mean(np.abs(zu - zeu), seed=seed),
        "mae_shuffled": float(shuffled_mae),
        "mae_fit_scale": float(np.abs(u - eu).mean()),
        "probability_sensitivity": cluster_bootstrap(
            groups, lambda r: sensitivity(u[r], eu[r], eq[r]), seed
        ),
        "regression": regression(u, eu, eq),
        "corr_eu_equal_weight": stats.correlation(eu, eq),
        "order_share": cluster_bootstrap(groups, share(eu), seed),
        "order_share_equal_weight": cluster_bootstrap(groups, share(eq), seed),
        "order_share_same_outcomes": cluster_bootstrap(groups, share(eu, within=True), seed),
    }


# ---- the analysis --------------------------------------------------------------------


def _outcomes(chosen: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for lot in chosen:
        category = "base" if lot["kind"] == "explicit" else "sub-outcome"
        for _, text in lot["branches"]:
            out.setdefault(text, {"text": text, "category": category})
        out[lot["text"]] = {"text": lot["text"], "category": lot["kind"]}
    return list(out.values())


def _row(lot: dict[str, Any], utility: dict[str, float], used: Branches | None) -> dict:
    base = lot["branches"]
    eu_base = sum(p * utility[t] for p, t in base)
    return {
        "id": lot["id"],
        "kind": lot["kind"],
        "group": lot["group"],
        "utility": float(utility[lot["text"]]),
        "expected_utility": None if used is None else float(sum(p * utility[t] for p, t in used)),
        "expected_utility_base_rate": float(eu_base),
        "equal_weight": float(np.mean([utility[t] for _, t in base])),
        "best_outcome": float(max(utility[t] for _, t in base)),
        "text": lot["text"],
    }


def _entry(stat: dict[str, Any], label: str) -> dict:
    return headline(stat["value"], stat["ci_low"], stat["ci_high"], label)


def _headlines(detail: dict[str, dict[str, Any]], source: str) -> dict[str, dict]:
    ex = detail["explicit"]
    out = {
        "probability_sensitivity": _entry(
            ex["probability_sensitivity"],
            "probability sensitivity b_EU / (b_EU + b_eq), explicit lotteries "
            "(1 = expected utility, 0 = ignores probabilities)",
        ),
        "order_share_explicit": _entry(
            ex["order_share"], "share of explicit lottery pairs whose order EU predicts"
        ),
    }
    for key, name in (
        ("explicit", "explicit"),
        ("implicit", "implicit, " + _SOURCE[source]),
        ("implicit_base_rate", "implicit, " + _SOURCE["reference"]),
    ):
        if key not in detail:
            continue
        d = detail[key]
        out[f"corr_{key}"] = headline_from(d["correlation"], f"corr(U, EU), {name}")
        out[f"mae_{key}"] = headline_from(d["mae"], f"mean |z(U) - z(EU)|, {name}")
    if "implicit" in detail:
        out["probability_sensitivity_implicit"] = _entry(
            detail["implicit"]["probability_sensitivity"],
            f"probability sensitivity, implicit lotteries ({_SOURCE[source]})",
        )
    return out


def _reading(detail: dict[str, dict[str, Any]], source: str) -> str:
    ex = detail["explicit"]
    s, o = ex["probability_sensitivity"], ex["order_share"]
    c = ex["correlation"]
    text = (
        f"Over {ex['n']} explicit lotteries, U(lottery) correlates with the expected utility "
        f"of its outcomes at {c['value']:.2f} [{c['ci_low']:.2f}, {c['ci_high']:.2f}], and EU "
        f"predicts the order of {o['value']:.0%} of lottery pairs (equal weights: "
        f"{ex['order_share_equal_weight']['value']:.0%}; pairs over the same outcomes with "
        f"different probabilities: {ex['order_share_same_outcomes']['value']:.0%}, chance 50%). "
        + _sensitivity_sentence(s)
    )
    keys = ["implicit"] + (["implicit_base_rate"] if source == "model" else [])
    if "implicit" not in detail:
        text += " Too few of the model's probabilities were usable for implicit lotteries."
        keys = ["implicit_base_rate"]
    for key in keys:
        d = detail[key]
        label = _SOURCE[source if key == "implicit" else "reference"]
        text += (
            f" Implicit lotteries ({d['n']} events), EU with {label}: correlation "
            f"{d['correlation']['value']:.2f}, sensitivity "
            f"{d['probability_sensitivity']['value']:.2f}."
        )
    return text


def _sensitivity_sentence(s: dict[str, Any]) -> str:
    if not np.isfinite(s["value"]):
        return (
            "Probability sensitivity is undefined: lottery utilities do not rise with the "
            "utilities of their outcomes, so there is no weighting to read."
        )
    return (
        f"Probability sensitivity is {s['value']:.2f} {_ci(s)}: 1 means lotteries are valued "
        "by their probability-weighted utility, 0 that the stated probabilities are ignored "
        "(a high correlation alone cannot tell these apart)."
    )


def _ci(stat: dict[str, Any]) -> str:
    if stat["ci_low"] is None:
        return "[no interval]"
    return f"[{stat['ci_low']:.2f}, {stat['ci_high']:.2f}]"


def _elicitation_summary(
    sub_rows: list[dict[str, Any]], events: list[dict[str, Any]]
) -> dict[str, Any]:
    """How the model's probabilities came out: unparseable replies, raw sums, base-rate gap."""
    raw_sums = []
    for lot in events:
        values = [r["model_probability_raw"] for r in sub_rows if r["event"] == lot["id"]]
        if values and all(v is not None for v in values):
            raw_sums.append(sum(values))
    gaps = [
        abs(r["model_probability"] - r["base_rate"])
        for r in sub_rows
        if r["model_probability"] is not None
    ]
    return {
        "asked": len(sub_rows),
        "unparseable": sum(r["model_probability_raw"] is None for r in sub_rows),
        "mean_raw_sum": float(np.mean(raw_sums)) if raw_sums else None,
        "mean_abs_diff_from_base_rate": float(np.mean(gaps)) if gaps else None,
    }


def _usable(rows: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    sel = [r for r in rows if r["kind"] == kind and r["expected_utility"] is not None]
    if len(sel) < 3:
        why = " (the model gave no usable probability)" if kind == "implicit" else ""
        raise ExperimentError(f"expected-utility: only {len(sel)} {kind} lotteries usable{why}")
    return sel


def run(ctx: ExperimentContext) -> dict[str, Any]:
    source = read_params("expected-utility", ctx.params).probabilities  # model or reference
    chosen = select(ctx.quick)
    outcomes = _outcomes(chosen)
    result = ctx.measure(
        "lotteries",
        seeded_order(outcomes, ctx.seed, "lotteries"),
        **measure_options(ctx.quick, len(outcomes)),
    )
    utility = dict(zip(result.utilities["outcome"], result.utilities["mean"]))

    events = [lot for lot in chosen if lot["kind"] == "implicit"]
    raw: dict[str, float | None] = {}
    sub_rows: list[dict[str, Any]] = []
    if source == "model":
        raw, sub_rows = elicit_probabilities(ctx, events)
    rows, dropped = [], 0
    for lot in chosen:
        used = lot["branches"]
        if lot["kind"] == "implicit" and source == "model":
            used = normalised(lot["branches"], raw)
            dropped += used is None
        rows.append(_row(lot, utility, used))
    for lot in events:
        probs = dict((t, q) for q, t in normalised(lot["branches"], raw) or [])
        for sub in (r for r in sub_rows if r["event"] == lot["id"]):
            sub["utility"] = float(utility[sub["outcome"]])
            sub["model_probability"] = probs.get(sub["outcome"])

    detail = {"explicit": analyse(_usable(rows, "explicit"), "expected_utility", ctx.seed)}
    implicit_all = [r for r in rows if r["kind"] == "implicit"]
    detail["implicit_base_rate"] = analyse(implicit_all, "expected_utility_base_rate", ctx.seed)
    notes = []
    try:
        detail["implicit"] = analyse(_usable(rows, "implicit"), "expected_utility", ctx.seed)
    except ExperimentError as exc:  # too few usable probabilities: keep the rest
        notes.append(f"{exc}; implicit lotteries are reported with base rates only")
    elicitation = {"source": source, "events": len(events), "events_dropped": dropped}
    elicitation.update(_elicitation_summary(sub_rows, events))
    plotted = [r for r in rows if r["expected_utility"] is not None]
    figure = scatter_svg(
        ctx.out / "expected-utility_scatter.svg",
        [r["expected_utility"] for r in plotted],
        [r["utility"] for r in plotted],
        "expected utility of the outcomes",
        "utility of the lottery",
        f"Expected utility: {ctx.model}",
        diagonal=True,
        groups=[r["kind"] for r in plotted],
    )
    return {
        "headline": _headlines(detail, source),
        "reading": _reading(detail, source),
        "tables": {"lotteries": rows, "sub_outcomes": sub_rows},
        "figures": [figure],
        "probabilities": source,
        "notes": notes,
        "probability_elicitation": elicitation,
        "dropped_no_probability": dropped,
        "sizes": {
            "explicit": len([x for x in chosen if x["kind"] == "explicit"]),
            "events": len(events),
            "sub_outcomes": sum(len(x["branches"]) for x in events),
            "outcomes_in_fit": len(outcomes),
        },
        "detail": detail,
        "run_dir": str(result.out),
    }


EXPERIMENT = Experiment(
    name="expected-utility",
    title="Expected utility",
    summary="lottery utilities vs the expected utility of their outcomes, probability "
    "sensitivity and EU-predicted order (explicit lotteries and real uncertain events)",
    run=run,
)
