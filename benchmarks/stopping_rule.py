"""Stopping rule: does the split-half reliability stop runs where it says it does?

The active design runs as two independent half-designs; it stops at the first round where
the Spearman between the halves' utilities, Spearman-Brown corrected (`stopping.reliability`
in metrics.json), reaches `--stop-at`. Reliability is the expected correlation of the run
with an independent rerun; under classical test theory the correlation with the noise-free
utilities is its square root, so a run stopped at reliability R should rank the truth at
about sqrt(R) >= R. The check: the final Spearman with the planted utilities is at least
stop_at - 0.01 in at least 95% of seeds.

Every run goes through `valuescope.pipeline.run` (the shipped rule, not a copy) on the first
100 outcomes of the `main` set, with a budget of every non-held-out pair so that only the
rule ends a run. Agents with noisy answers: `sim/thurstone` in sample mode with K = 1, 3, 10
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
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from valuescope.config import RunConfig
from valuescope.design import heldout_size, n_all_pairs
from valuescope.outcomes import load_outcomes
from valuescope.pipeline import run

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


def outcome_file(root: Path) -> Path:
    """The first N outcomes of `main` as a text file."""
    path = root / f"main{N}.txt"
    path.write_text("\n".join(load_outcomes("main").texts[:N]) + "\n", encoding="utf-8")
    return path


def one_run(model: str, mode: str, k: int, stop_at: float, seed: int, outcomes: Path) -> dict:
    """One pipeline run; what the stopping record and the truth say."""
    out = outcomes.parent / f"run-{seed}"
    shutil.rmtree(out, ignore_errors=True)
    budget = n_all_pairs(N) - heldout_size(N)
    config = RunConfig(
        model=model,
        outcomes=str(outcomes),
        out=out,
        mode=mode,
        samples=k,
        budget=budget,
        stop_at=stop_at,
        seed=seed,
        bootstrap=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant fits of a coin warn in the evaluation
        m = run(config).metrics
    stop = m["stopping"]
    truth = m.get("truth", {}).get("spearman")
    return {
        "stopped_early": stop["stopped_early"],
        "pairs": stop["n_pairs"],
        "budget": budget,
        "reliability": stop["reliability"],
        "max_reliability": max(r for _, r in stop["history"]),
        "spearman": truth,
    }


def cell(name: str, spec: tuple, stop_at: float, seeds: list[int], root: Path) -> dict:
    """Runs over seeds for one agent and target, summarised."""
    outcomes = outcome_file(root)
    rows = [one_run(*spec, stop_at, s, outcomes) for s in seeds]
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
    print(json.dumps(out), file=sys.stderr, flush=True)
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
        "share >= stop-at - 0.01",
    ]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        rho = (
            f"{r['spearman_mean']:.4f} / {r['spearman_p5']:.4f} / {r['spearman_min']:.4f}"
            if "spearman_mean" in r
            else f"(coin; max reliability seen {r['max_reliability']:.3f})"
        )
        share = f"{r['share_at_least_target_minus_0.01']:.2f}" if "spearman_mean" in r else "-"
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
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name, spec in AGENTS.items():
            rows += [cell(name, spec, t, seeds, root) for t in targets]
        for name, spec in COINS.items():
            rows.append(cell(name, spec, 0.5, seeds, root))
    print(f"\nN = {N} outcomes, {n_seeds} seeds per row, {time.perf_counter() - t0:.0f} s\n")
    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
