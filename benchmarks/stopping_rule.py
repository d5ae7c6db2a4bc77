"""Stopping rule: does the split-half reliability stop runs where it says it does?

The active design runs as two independent half-designs; it stops at the first round where
the Spearman between the halves' utilities, Spearman-Brown corrected (`stopping.reliability`
in metrics.json), reaches `--stop-at`. Reliability is the expected correlation of the run
with an independent rerun; under classical test theory the correlation with the noise-free
utilities is its square root, so a run stopped at reliability R should rank the truth at
about sqrt(R) >= R. The check: the final Spearman with the planted utilities is at least
stop_at - 0.01 in at least 95% of seeds.

Every run goes through `pipeline._elicit_design` (the shipped design and rule, not a copy)
with the run's own seeded start cycle and held-out triads, on the first 100 outcomes of the
`main` set, with a budget of every non-held-out pair so that only the rule ends a run;
answers come from the real `sim/*` backends (no cache), and the final fit is
`fit_thurstonian` on the answered pairs, as the run fits them. The rest of a run (held-out
evaluation, the coin baseline, the report) does not change where it stops and is skipped.
Agents with noisy answers: `sim/thurstone` in sample mode with K = 1, 3, 10
answers per order, `sim/thurstone?logprob_noise=1` in logprob mode (N(0, 1) noise on the
logit of P(A), fixed per prompt). A coin (`sim/random`, sample mode K = 1 and logprob mode)
must show a reliability near 0 and never stop early. OpenBLAS is pinned to one thread.
Usage::

    python benchmarks/stopping_rule.py            # 20 seeds per cell
    python benchmarks/stopping_rule.py --quick    # 6 seeds, targets 0.9 and 0.95
"""

# ruff: noqa: E402  (OpenBLAS is pinned before numpy is imported)
from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy loads OpenBLAS

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from valuescope.config import RunConfig
from valuescope.design import heldout_size, n_all_pairs, split_heldout
from valuescope.elicit import ElicitSettings, aggregate, build_queries, get_template
from valuescope.fit import fit_thurstonian
from valuescope.models import get_backend
from valuescope.outcomes import load_outcomes
from valuescope.runcore.pipeline import _elicit_design

N = 100
AGENTS = {
    "thurstone sample K=1": ("sim/thurstone", "sample", 1),
    "thurstone sample K=3": ("sim/thurstone", "sample", 3),
    "thurstone sample K=10": ("sim/thurstone", "sample", 10),
    "thurstone logprob_noise=1": ("sim/thurstone?logprob_noise=1", "logprob", 1),
}
COINS = {
    "coin sample K=1": ("sim/random", "sample", 1),
    "coin logprob": ("sim/random", "logprob", 1),
}


def one_run(model: str, mode: str, k: int, stop_at: float, seed: int) -> dict:
    """The shipped design and stopping rule on one seeded agent; what they end with."""
    texts = load_outcomes("main").texts[:N]
    backend = get_backend(model, seed=seed)
    settings = ElicitSettings(mode=mode, samples=k)
    template = get_template("default")

    def ask(pairs: np.ndarray):
        return aggregate(
            pairs, backend.answer(build_queries(texts, pairs, template, settings)), settings
        )

    budget = n_all_pairs(N) - heldout_size(N)
    config = RunConfig(mode=mode, samples=k, budget=budget, stop_at=stop_at, seed=seed)
    rng = np.random.default_rng(seed)  # the run's own stream, as pipeline.run draws it
    start, held, _ = split_heldout(N, rng, heldout_size(N))
    train, stop = _elicit_design(config, N, budget, start, held, rng, ask)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # K=1 fits may need more iterations; still fine
        fit = fit_thurstonian(train.pairs, train.p, N)
    truth = backend.truth(texts)["mean"].to_numpy() if hasattr(backend, "truth") else None
    return {
        "stopped_early": stop["stopped_early"],
        "pairs": stop["n_pairs"],
        "budget": budget,
        "reliability": stop["reliability"],
        "max_reliability": max(r for _, r in stop["history"]),
        "spearman": None if truth is None else float(spearmanr(fit.mean, truth)[0]),
    }


def cell(name: str, spec: tuple, stop_at: float, seeds: list[int]) -> dict:
    """Runs over seeds for one agent and target, summarised."""
    rows = [one_run(*spec, stop_at, s) for s in seeds]
    out = {
        "agent": name,
        "stop_at": stop_at,
        "seeds": len(rows),
        "stopped_early": sum(r["stopped_early"] for r in rows),
        "pairs_mean": float(np.mean([r["pairs"] for r in rows])),
        "budget": rows[0]["budget"],
        "reliability_mean": float(np.mean([r["reliability"] for r in rows])),
        "max_reliability": float(max(r["max_reliability"] for r in rows)),
    }
    if rows[0]["spearman"] is not None:
        rho = np.array([r["spearman"] for r in rows])
        out["spearman_mean"] = float(rho.mean())
        out["spearman_p5"] = float(np.quantile(rho, 0.05))
        out["spearman_min"] = float(rho.min())
        out["share_at_least_target_minus_0.01"] = float(np.mean(rho >= stop_at - 0.01))
        stopped = np.array([r["stopped_early"] for r in rows])
        out["share_of_stopped_at_least_target_minus_0.01"] = (
            float(np.mean(rho[stopped] >= stop_at - 0.01)) if stopped.any() else None
        )
    out["runs"] = rows
    brief = {k: v for k, v in out.items() if k != "runs"}
    print(json.dumps(brief), file=sys.stderr, flush=True)
    return out


def print_table(rows: list[dict]) -> None:
    head = [
        "agent",
        "stop-at",
        "seeds",
        "stopped early",
        "pairs at stop (mean)",
        "reliability at stop (mean)",
        "Spearman with truth (mean / 5th pct / min)",
        "share >= stop-at - 0.01 (all / stopped runs)",
    ]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        rho = (
            f"{r['spearman_mean']:.4f} / {r['spearman_p5']:.4f} / {r['spearman_min']:.4f}"
            if "spearman_mean" in r
            else f"(coin; max reliability seen {r['max_reliability']:.3f})"
        )
        share = "-"
        if "spearman_mean" in r:
            of_stopped = r["share_of_stopped_at_least_target_minus_0.01"]
            share = f"{r['share_at_least_target_minus_0.01']:.2f} / " + (
                "-" if of_stopped is None else f"{of_stopped:.2f}"
            )
        cells = [
            r["agent"],
            f"{r['stop_at']:.2f}",
            r["seeds"],
            f"{r['stopped_early']}/{r['seeds']}",
            f"{r['pairs_mean']:.0f} of {r['budget']}",
            f"{r['reliability_mean']:.3f}",
            rho,
            share,
        ]
        print("| " + " | ".join(str(c) for c in cells) + " |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="6 seeds, two targets")
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args(argv)
    n_seeds = args.seeds or (6 if args.quick else 20)
    targets = [0.9, 0.95] if args.quick else [0.9, 0.95, 0.99]
    seeds = list(range(n_seeds))
    t0 = time.perf_counter()
    rows = []
    for name, spec in AGENTS.items():
        rows += [cell(name, spec, t, seeds) for t in targets]
    for name, spec in COINS.items():
        rows.append(cell(name, spec, 0.5, seeds))
    print(f"\nN = {N} outcomes, {n_seeds} seeds per row, {time.perf_counter() - t0:.0f} s\n")
    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
