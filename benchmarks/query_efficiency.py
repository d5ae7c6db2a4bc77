"""Query efficiency: queries needed to reach Spearman 0.97 with the truth of `sim/thurstone`.

The subject is `sim/thurstone` on the built-in `main` set (503 outcomes); its hidden
utilities are drawn from the seed. Four experiments:

A. protocols, through `valuescope.runcore.pipeline.run(RunConfig(..., bootstrap=0))`: the reference
   protocol (sample mode, K=10 samples per order, active design) against valuescope's
   defaults (logprob mode, active design), over a sweep of budgets (training pairs).
B. designs, through a loop that mirrors `pipeline._elicit_design` (same start cycle, held-out
   pairs, batch sizes and random stream; the elicitation is `elicit_pairs` without the
   cache): active, random and `information.select_batch`, in logprob mode and in sample mode
   with K=1 and K=3 (noisier, like real models).
C. adaptive stopping: the same loop at the default budget (2 N log2 N pairs) with
   `information.estimated_spearman` checked after every round; where it would stop.
D. fewer samples where the answer is decisive (sample mode, K up to 10): one sample per
   order first, nine more per order only where those two answers disagree.
E. shipped defaults: `valuescope run sim/thurstone --outcomes main` exactly as a user
   gets it (logprob mode, active design, default budget, adaptive stopping at a
   split-half reliability of 0.99) against the reference protocol's whole default budget.
F. sigma recovery at equal budget: Spearman with the true means and Pearson r of the
   fitted with the true sigmas, for random pairs, the reference's active design and the
   default active design (two independent halves) with uniform shares 0, 0.3 (the
   default) and 0.5, through `pipeline._elicit_design` itself (the shipped design code)
   with answers drawn from the planted probabilities (binomial, 2 K answers per pair; no
   cache), so that many seeds fit in minutes. `--sections F` runs it alone.

Budgets count unordered training pairs; queries count model calls for training pairs
(2 per pair in logprob mode, 2 K in sample mode). Every run also asks 1,000 held-out pairs,
the same for every protocol; section A reports that total too. The smallest budget whose
mean Spearman over seeds reaches 0.97 is reported, with a linear interpolation between
grid points. OpenBLAS is pinned to one thread (it only changes the speed of the fits).
`--agent sim/noisy` puts the real-model-like agent (position bias, per-prompt logit noise
and softness measured on the embedded default model; docs/models.md) in place of
`sim/thurstone` in every section. Usage::

    python benchmarks/query_efficiency.py           # 3 seeds (about 10 minutes on 2 cores)
    python benchmarks/query_efficiency.py --quick   # 2 seeds, coarser grids
"""

# ruff: noqa: E402  (OpenBLAS is pinned before numpy is imported)
from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy loads OpenBLAS

import argparse
import json
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from valuescope.config import RunConfig
from valuescope.design import (
    batch_size,
    decode,
    default_budget,
    heldout_size,
    information,
    pair_codes,
    sample_new_codes,
    split_start,
)
from valuescope.design import select_batch as active_batch
from valuescope.elicit import (
    ElicitSettings,
    PairAnswers,
    aggregate,
    build_queries,
    get_template,
)
from valuescope.fit import fit_thurstonian
from valuescope.models import get_backend
from valuescope.outcomes import load_outcomes
from valuescope.runcore.pipeline import _elicit_design, run

TARGET = 0.97
MODEL = "sim/thurstone"
OUTCOMES = "main"
# Budget grids (training pairs) per protocol; N = 503, so 503 pairs is the start cycle alone.
GRIDS = {
    "logprob": [503, 550, 600, 650, 700, 750, 800, 900],
    "sample-K1": [2500, 3500, 4500, 5500, 6500, 7500],
    "sample-K3": [1000, 1250, 1500, 1750, 2000, 2500],
    "sample-K10": [600, 700, 800, 900, 1000, 1100, 1200, 1400],
}
SETTINGS = {
    "logprob": ElicitSettings(mode="logprob"),
    "sample-K1": ElicitSettings(mode="sample", samples=1),
    "sample-K3": ElicitSettings(mode="sample", samples=3),
    "sample-K10": ElicitSettings(mode="sample", samples=10),
}


def per_pair(settings: ElicitSettings) -> int:
    """Model calls per unordered pair (both orders)."""
    return 2 * (settings.samples if settings.mode == "sample" else 1)


# ---------------------------------------------------------------- A: protocols


def protocol_rows(name: str, extra: dict, grid: list[int], seeds: list[int], root: Path) -> list:
    """pipeline.run over a budget grid; one run directory (and cache) per seed."""
    rows = []
    for seed in seeds:
        out = root / f"{name}-seed{seed}"
        for budget in grid:
            cfg = RunConfig(
                model=MODEL,
                outcomes=OUTCOMES,
                out=out,
                budget=budget,
                seed=seed,
                bootstrap=0,
                stop_at=None,  # the sweep fixes the budget; section E measures stopping
            )
            res = run(cfg.model_copy(update=extra), overwrite=True)  # one dir per seed, all budgets
            m = res.metrics
            k = m["samples"] if m["mode"] == "sample" else 1
            rows.append(
                {
                    "protocol": name,
                    "seed": seed,
                    "budget": budget,
                    "spearman": m["truth"]["spearman"],
                    "train_queries": m["n_pairs"] * 2 * k,
                    "queries": m["n_queries"],
                }
            )
            _log(f"A {name} seed={seed} budget={budget}: {m['truth']['spearman']:.4f}")
    return rows


# ---------------------------------------------------------------- B-D: the mirrored loop


@dataclass
class Subject:
    """One seeded sim/thurstone agent over the outcome set, with its answers remembered."""

    seed: int
    backend: object
    texts: tuple[str, ...]
    truth: np.ndarray
    template: object = field(default_factory=lambda: get_template("default"))
    memo: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.texts)


def make_subject(seed: int) -> Subject:
    outcomes = load_outcomes(OUTCOMES)
    backend = get_backend(MODEL, seed=seed)
    return Subject(seed, backend, outcomes.texts, backend.truth(outcomes.texts)["mean"].values)


def ask(subject: Subject, pairs: np.ndarray, settings: ElicitSettings) -> np.ndarray:
    """P(first > second) per pair, as `elicit_pairs` gets it (answers are deterministic)."""
    memo = subject.memo.setdefault((settings.mode, settings.samples), {})  # code -> P(lo > hi)
    pairs = np.asarray(pairs, dtype=np.int64)
    codes = pair_codes(pairs, subject.n)
    flipped = pairs[:, 0] > pairs[:, 1]
    todo = [i for i, c in enumerate(codes.tolist()) if c not in memo]
    if todo:
        queries = build_queries(subject.texts, pairs[todo], subject.template, settings)
        got = aggregate(pairs[todo], subject.backend.answer(queries), settings).p
        got = np.where(flipped[todo], 1.0 - got, got)
        memo.update(zip(codes[todo].tolist(), got.tolist()))
    p_lo = np.array([memo[c] for c in codes.tolist()])
    return np.where(flipped, 1.0 - p_lo, p_lo)


def ask_decisive(subject: Subject, pairs: np.ndarray, k_max: int) -> tuple[np.ndarray, int]:
    """One sample per order; k_max per order only where the two answers disagree."""
    first = ask(subject, pairs, SETTINGS["sample-K1"])
    more = information.needs_more_answers(first)
    p = first.copy()
    if more.any():
        full = ask(subject, pairs[more], ElicitSettings(mode="sample", samples=k_max))
        p[more] = full  # sample 0 of each order is the one already asked
    return p, 2 * len(pairs) + 2 * (k_max - 1) * int(more.sum())


Selector = Callable[[object, np.ndarray, np.ndarray, int, np.random.Generator], np.ndarray]


def select_active(fit, asked, held_codes, k, rng) -> np.ndarray:
    return active_batch(fit.mean, asked, held_codes, k, rng)


def select_information(fit, asked, held_codes, k, rng) -> np.ndarray:
    return information.select_batch(fit.mean, asked, held_codes, k, rng, sigma=fit.sigma)


DESIGNS: dict[str, Selector | None] = {
    "active": select_active,
    "random": None,
    "information": select_information,
}


def design_loop(
    subject: Subject,
    design: str,
    budget: int,
    answer: Callable[[np.ndarray], tuple[np.ndarray, int]],
    on_round: Callable[[int, object], bool] | None = None,
) -> dict:
    """Mirror of `pipeline._elicit_design` with a pluggable selector; returns the outcome.

    `on_round(n_pairs, fit)` sees every intermediate fit and may stop the loop (True).
    """
    n, rng = subject.n, np.random.default_rng(subject.seed)
    start, heldout = split_start(n, rng, heldout_size(n))
    held_codes = pair_codes(heldout, n)
    start = start[:budget]
    if design == "random":
        exclude = np.concatenate([pair_codes(start, n), held_codes])
        pairs = np.concatenate(
            [start, decode(sample_new_codes(n, budget - len(start), exclude, rng), n)]
        )
        p, queries = answer(pairs)
    else:
        pairs, (p, queries) = start, answer(start)
        init, step = None, batch_size(n, budget)
        while len(pairs) < budget:
            fit = fit_thurstonian(pairs, p, n, init=init, check_input=False)
            init = fit.raw_params
            if on_round is not None and on_round(len(pairs), fit):
                break
            batch = DESIGNS[design](fit, pairs, held_codes, min(step, budget - len(pairs)), rng)
            if len(batch) == 0:
                break
            bp, bq = answer(batch)
            pairs, p, queries = (
                np.concatenate([pairs, batch]),
                np.concatenate([p, bp]),
                queries + bq,
            )
    fit = fit_thurstonian(pairs, p, n)
    return {"pairs": len(pairs), "queries": queries, "spearman": spearman(fit.mean, subject.truth)}


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    return float(spearmanr(a, b)[0])


def fixed_answers(subject: Subject, settings: ElicitSettings) -> Callable:
    return lambda pairs: (ask(subject, pairs, settings), per_pair(settings) * len(pairs))


def design_rows(subjects: list[Subject], modes: list[str], grids: dict) -> list[dict]:
    """Section B: every design x mode x budget x seed."""
    rows = []
    for mode in modes:
        for design in DESIGNS:
            for budget in grids[mode]:
                for s in subjects:
                    out = design_loop(s, design, budget, fixed_answers(s, SETTINGS[mode]))
                    rows.append(
                        {
                            "protocol": f"{design}/{mode}",
                            "seed": s.seed,
                            "budget": budget,
                            "spearman": out["spearman"],
                            "train_queries": out["queries"],
                        }
                    )
                _log(f"B {design}/{mode} budget={budget}: {_mean(rows[-len(subjects) :]):.4f}")
    return rows


def stopping_rows(subjects: list[Subject], modes: list[str], designs: list[str]) -> list[dict]:
    """Section C: where `estimated_spearman >= 0.97` stops a default-budget run."""
    rows = []
    for mode in modes:
        for design in designs:
            for s in subjects:
                state: dict = {"prev": None, "stop": None}

                def on_round(n_pairs: int, fit, state=state) -> bool:
                    prev = state["prev"]
                    state["prev"] = (n_pairs, fit.mean)
                    if prev is None:
                        return False
                    est = information.estimated_spearman(prev[1], fit.mean, prev[0], n_pairs)
                    state["stop"] = est if est >= TARGET else None
                    return est >= TARGET

                budget = default_budget(s.n)
                out = design_loop(s, design, budget, fixed_answers(s, SETTINGS[mode]), on_round)
                rows.append(
                    {
                        "protocol": f"{design}/{mode}",
                        "seed": s.seed,
                        "default_budget": budget,
                        "default_queries": budget * per_pair(SETTINGS[mode]),
                        "stopped": state["stop"] is not None,
                        "pairs": out["pairs"],
                        "train_queries": out["queries"],
                        "spearman": out["spearman"],
                    }
                )
                _log(
                    f"C {design}/{mode} seed={s.seed}: stop at {out['pairs']} pairs, "
                    f"Spearman {out['spearman']:.4f}"
                )
    return rows


def decisive_rows(subjects: list[Subject], grid: list[int], k_max: int = 10) -> list[dict]:
    """Section D: adaptive samples (1, then k_max per order where split), active design."""
    rows = []
    for budget in grid:
        for s in subjects:
            out = design_loop(s, "active", budget, lambda pairs, s=s: ask_decisive(s, pairs, k_max))
            rows.append(
                {
                    "protocol": f"active/sample-K1to{k_max}",
                    "seed": s.seed,
                    "budget": budget,
                    "spearman": out["spearman"],
                    "train_queries": out["queries"],
                }
            )
        _log(f"D budget={budget}: {_mean(rows[-len(subjects) :]):.4f}")
    return rows


def mirror_check(protocol: list[dict], subject: Subject, budget: int) -> float:
    """|Spearman of the mirrored loop - Spearman of pipeline.run| for one default run."""
    ref = next(
        r
        for r in protocol
        if r["protocol"].startswith("default")
        and r["seed"] == subject.seed
        and r["budget"] == budget
    )
    out = design_loop(subject, "active", budget, fixed_answers(subject, SETTINGS["logprob"]))
    diff = abs(out["spearman"] - ref["spearman"])
    _log(f"mirror check (logprob, active, budget {budget}): |difference| = {diff:.2e}")
    return diff


# ---------------------------------------------------------------- summaries


def _mean(rows: list[dict], key: str = "spearman") -> float:
    return float(np.mean([r[key] for r in rows]))


def curve(rows: list[dict]) -> list[dict]:
    """Per budget: mean and sd of Spearman over seeds, mean queries."""
    out = []
    for budget in sorted({r["budget"] for r in rows}):
        sel = [r for r in rows if r["budget"] == budget]
        out.append(
            {
                "budget": budget,
                "spearman": _mean(sel),
                "sd": float(np.std([r["spearman"] for r in sel])),
                "train_queries": _mean(sel, "train_queries"),
                **({"queries": _mean(sel, "queries")} if "queries" in sel[0] else {}),
            }
        )
    return out


def threshold(points: list[dict], target: float = TARGET) -> dict:
    """Smallest grid budget whose mean Spearman reaches target, and an interpolated one."""
    for i, pt in enumerate(points):
        if pt["spearman"] >= target:
            res = {"budget": pt["budget"], "train_queries": pt["train_queries"]}
            if "queries" in pt:
                res["queries"] = pt["queries"]
            if i > 0:
                lo = points[i - 1]
                frac = (target - lo["spearman"]) / (pt["spearman"] - lo["spearman"])
                res["interp_train_queries"] = lo["train_queries"] + frac * (
                    pt["train_queries"] - lo["train_queries"]
                )
            else:
                res["interp_train_queries"] = pt["train_queries"]
            return res
    last = points[-1]
    return {"budget": None, "train_queries": None, "best": last["spearman"], "at": last["budget"]}


def _row(*cells: object) -> None:
    print("| " + " | ".join(str(c) for c in cells) + " |")


def print_curves(title: str, rows: list[dict]) -> dict:
    """A markdown table per protocol; returns the thresholds."""
    print(f"\n### {title}\n")
    _row("protocol", "budget (pairs)", "training queries", "mean Spearman", "sd")
    _row(*["---"] * 5)
    found = {}
    for name in dict.fromkeys(r["protocol"] for r in rows):
        pts = curve([r for r in rows if r["protocol"] == name])
        for pt in pts:
            mark = " *" if pt["spearman"] >= TARGET else ""
            sp = f"{pt['spearman']:.4f}{mark}"
            _row(name, pt["budget"], f"{pt['train_queries']:.0f}", sp, f"{pt['sd']:.4f}")
        found[name] = threshold(pts)
    print()
    _row("protocol", "smallest budget reaching 0.97", "training queries", "interpolated")
    _row(*["---"] * 4)
    for name, t in found.items():
        if t["budget"] is None:
            _row(name, f"not reached (best {t['best']:.4f} at {t['at']})", "", "")
        else:
            q, qi = f"{t['train_queries']:.0f}", f"{t['interp_train_queries']:.0f}"
            _row(name, t["budget"], q, qi)
    return found


def print_stopping(rows: list[dict]) -> dict:
    """Where the stopping rule ends default-budget runs, and what it saves."""
    print("\n### C. adaptive stopping (estimated Spearman >= 0.97), default budget otherwise\n")
    _row(
        "protocol",
        "default budget (queries)",
        "stopped at pairs (mean)",
        "training queries (mean)",
        "Spearman at stop (mean / min)",
        "query saving",
    )
    _row(*["---"] * 6)
    out = {}
    for name in dict.fromkeys(r["protocol"] for r in rows):
        sel = [r for r in rows if r["protocol"] == name]
        q = _mean(sel, "train_queries")
        saving = sel[0]["default_queries"] / q
        worst = min(r["spearman"] for r in sel)
        _row(
            name,
            f"{sel[0]['default_budget']} ({sel[0]['default_queries']})",
            f"{_mean(sel, 'pairs'):.0f}",
            f"{q:.0f}",
            f"{_mean(sel):.4f} / {worst:.4f}",
            f"{saving:.1f}x",
        )
        out[name] = {
            "train_queries": q,
            "spearman_mean": _mean(sel),
            "spearman_min": worst,
            "saving_vs_default_budget": saving,
        }
    return out


def set_agent(model: str) -> None:
    """Make `model` the subject of every section (its backend must have `truth`)."""
    global MODEL
    MODEL = model


def _log(msg: str) -> None:
    print(f"# {time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 seeds, coarser grids")
    parser.add_argument("--seeds", type=int, help="number of seeds (default 3, quick 2)")
    parser.add_argument("--sections", default="ABCDE", help="which experiments to run")
    parser.add_argument(
        "--agent",
        default=MODEL,
        help="the subject: sim/thurstone (exact answers) or sim/noisy (real-model-like: "
        "position bias, per-prompt logit noise, softness measured on the embedded default)",
    )
    parser.add_argument("--root", type=Path, default=Path("/tmp/valuescope-bench/query_efficiency"))
    args = parser.parse_args(argv)
    set_agent(args.agent)
    seeds = list(range(args.seeds or (2 if args.quick else 3)))
    grids = {k: (v[::2] + [v[-1]] if args.quick and len(v) > 4 else v) for k, v in GRIDS.items()}
    grids = {k: sorted(set(v)) for k, v in grids.items()}
    shutil.rmtree(args.root, ignore_errors=True)
    args.root.mkdir(parents=True)
    t0 = time.perf_counter()
    summary: dict = {
        "benchmark": "query_efficiency",
        "agent": MODEL,
        "target": TARGET,
        "seeds": len(seeds),
        "cpus": os.cpu_count(),
        "load_avg_start": round(os.getloadavg()[0], 2),
    }
    if "A" in args.sections:
        rows = protocol_rows(
            "reference (sample K=10, active)",
            {"mode": "sample", "samples": 10},
            grids["sample-K10"],
            seeds,
            args.root,
        )
        rows += protocol_rows("default (logprob, active)", {}, grids["logprob"], seeds, args.root)
        found = print_curves("A. protocols via pipeline.run", rows)
        ref, dflt = found.values()
        summary["A"] = found
        if ref["budget"] and dflt["budget"]:
            summary["A_ratio_train_queries"] = ref["train_queries"] / dflt["train_queries"]
            summary["A_ratio_total_queries"] = ref["queries"] / dflt["queries"]
            summary["A_ratio_interpolated"] = (
                ref["interp_train_queries"] / dflt["interp_train_queries"]
            )
    subjects = [make_subject(s) for s in seeds]
    if "A" in args.sections:
        summary["mirror_check"] = mirror_check(rows, subjects[0], grids["logprob"][-1])
    if "B" in args.sections:
        rows = design_rows(subjects, ["logprob", "sample-K1", "sample-K3"], grids)
        summary["B"] = print_curves("B. designs (mirrored loop)", rows)
    if "C" in args.sections:
        rows = stopping_rows(
            subjects, ["logprob", "sample-K1", "sample-K3", "sample-K10"], ["active", "information"]
        )
        summary["C"] = print_stopping(rows)
    if "D" in args.sections:
        rows = decisive_rows(subjects, [1000, 1500, 2000, 2500, 3000])
        summary["D"] = print_curves("D. fewer samples where decisive (active design)", rows)
    if "E" in args.sections:
        summary["E"] = shipped_defaults(seeds, args.root)
    if "F" in args.sections:
        f_seeds = list(range(args.seeds or (3 if args.quick else 6)))
        summary["F"] = print_sigma(sigma_rows(f_seeds, SIGMA_MODES, SIGMA_BUDGETS))
    summary["seconds"] = round(time.perf_counter() - t0)
    summary["load_avg_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(_rounded(summary)))


def shipped_defaults(seeds: list[int], root: Path) -> dict:
    """Queries and Spearman of the shipped defaults, against the reference's full budget."""
    rows = []
    for seed in seeds:
        out = root / f"shipped-{seed}"
        m = run(RunConfig(model=MODEL, outcomes=OUTCOMES, out=out, seed=seed)).metrics
        rows.append(
            {
                "seed": seed,
                "queries": m["n_queries"],
                "train_queries": 2 * m["n_pairs"],
                "spearman": m["truth"]["spearman"],
                "stopped_early": m["stopping"]["stopped_early"],
            }
        )
        shutil.rmtree(out, ignore_errors=True)
    n = 503
    budget = default_budget(n)
    reference = (budget + heldout_size(n)) * 2 * 10  # K=10 samples in both orders
    print("\n### E. shipped defaults (valuescope run, no options) vs the reference budget\n")
    _row("seed", "queries", "training queries", "Spearman", "stopped early")
    _row(*["---"] * 5)
    for r in rows:
        _row(
            r["seed"], r["queries"], r["train_queries"], f"{r['spearman']:.4f}", r["stopped_early"]
        )
    mean_q = float(np.mean([r["queries"] for r in rows]))
    print(
        f"\nreference protocol at its default budget: {reference:,} queries; "
        f"ratio {reference / mean_q:.1f}x"
    )
    return {
        "mean_queries": mean_q,
        "min_spearman": min(r["spearman"] for r in rows),
        "reference_queries": reference,
        "ratio_vs_reference_budget": reference / mean_q,
    }


# Section F: designs compared at equal budgets (training pairs, N = 503).
SIGMA_DESIGNS = {
    "random": {"design": "random"},
    "reference": {"design": "reference"},
    "active, share 0": {"design": "active", "uniform_share": 0.0},
    "active, share 0.3 (default)": {"design": "active", "uniform_share": 0.3},
    "active, share 0.5": {"design": "active", "uniform_share": 0.5},
}
SIGMA_MODES = {"logprob": 0, "sample-K1": 1, "sample-K3": 3}
SIGMA_BUDGETS = {"logprob": [1500, 3000], "sample-K1": [5000, 10000], "sample-K3": [3000, 6000]}


def binomial_asker(mu: np.ndarray, sigma: np.ndarray, k: int, seed: int) -> Callable:
    """`ask(pairs) -> PairAnswers` for a planted Thurstonian agent; k=0: exact probabilities."""
    from scipy.special import ndtr

    rng = np.random.default_rng([seed, 99])

    def ask(pairs: np.ndarray) -> PairAnswers:
        pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        a, b = pairs[:, 0], pairs[:, 1]
        q = ndtr((mu[a] - mu[b]) / np.hypot(sigma[a], sigma[b]))
        p = q if k == 0 else rng.binomial(2 * k, q) / (2 * k)
        e = len(pairs)
        return PairAnswers(
            pairs=pairs,
            p=p,
            n_answers=np.full(e, 2 * max(k, 1)),
            n_refused=np.zeros(e, dtype=np.int64),
            a_share_sum=0.0,
            a_share_count=0.0,
            n_queries=2 * max(k, 1) * e,
            n_new=2 * max(k, 1) * e,
            tokens_in=0,
            tokens_out=0,
            prefs=np.repeat(p[:, None, None], 2, axis=1),
        )

    return ask


def sigma_rows(seeds: list[int], modes: dict, budgets: dict) -> list[dict]:
    """Section F: Spearman and r(sigma) per design, mode, budget and seed."""
    from scipy.stats import pearsonr

    n = 503
    rows = []
    for mode, k in modes.items():
        for budget in budgets[mode]:
            for seed in seeds:
                truth = np.random.default_rng([seed, 5]).normal(size=n)
                sigma = np.random.default_rng([seed, 6]).uniform(0.2, 1.0, n)
                for name, extra in SIGMA_DESIGNS.items():
                    config = RunConfig(seed=seed, budget=budget, stop_at=None, **extra)
                    rng = np.random.default_rng(seed)
                    start, held = split_start(n, rng, heldout_size(n))
                    ask = binomial_asker(truth, sigma, k, seed)
                    t0 = time.perf_counter()
                    train, _ = _elicit_design(config, n, budget, start, held, rng, ask)
                    fit = fit_thurstonian(train.pairs, train.p, n)
                    rows.append(
                        {
                            "mode": mode,
                            "budget": budget,
                            "design": name,
                            "seed": seed,
                            "spearman": spearman(fit.mean, truth),
                            "r_sigma": float(pearsonr(fit.sigma, sigma)[0]),
                            "seconds": time.perf_counter() - t0,
                        }
                    )
                _log(f"F {mode} budget={budget} seed={seed} done")
    return rows


def print_sigma(rows: list[dict]) -> dict:
    """Mean Spearman and r(sigma) per design at each budget; gaps to random."""
    print("\n### F. sigma recovery at equal budget (N = 503, mean over seeds)\n")
    _row("mode", "pairs", "design", "Spearman", "r(sigma)", "r(sigma) - random", "seeds")
    _row(*["---"] * 7)
    out: dict = {}
    keys = sorted({(r["mode"], r["budget"]) for r in rows}, key=lambda x: (x[0], x[1]))
    for mode, budget in keys:
        here = [r for r in rows if r["mode"] == mode and r["budget"] == budget]
        base = float(np.mean([r["r_sigma"] for r in here if r["design"] == "random"]))
        for name in SIGMA_DESIGNS:
            mine = [r for r in here if r["design"] == name]
            rho = float(np.mean([r["spearman"] for r in mine]))
            rs = float(np.mean([r["r_sigma"] for r in mine]))
            out[f"{mode}/{budget}/{name}"] = {"spearman": rho, "r_sigma": rs}
            _row(mode, budget, name, f"{rho:.4f}", f"{rs:.3f}", f"{rs - base:+.3f}", len(mine))
    return out


def _rounded(value):
    """Floats to 4 decimals, recursively (for the one-line JSON summary)."""
    if isinstance(value, dict):
        return {str(k): _rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rounded(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return round(float(value), 4)
    return value


if __name__ == "__main__":
    main()
