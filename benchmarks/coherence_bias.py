"""Coherence before and after: figures over the asked pairs vs over uniform held-out items.

For planted agents (transitive Thurstonian, a coin, Thurstonian with a rock-paper-scissors
block of growing share) and three designs (the default active design, the reference active
design and uniform random pairs), runs the real pipeline and prints, side by side:

- "asked": completeness over the asked pairs and P(cycle) over triangles of the asked
  graph (what runs reported before issue 17; now under metrics["diagnostics"]);
- "uniform": the headline figures, over the uniform held-out pairs and triads, with
  their 95% intervals;
- "truth": the agent's exact completeness over every pair and P(cycle) over 200,000
  uniformly drawn triads, from its hidden P(a > b) (no answers involved).

    python benchmarks/coherence_bias.py                  # main set (503 outcomes), ~15 min
    python benchmarks/coherence_bias.py --outcomes demo  # 36 outcomes, seconds

Results and the command's load average go in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from valuescope.config import RunConfig
from valuescope.models import get_backend
from valuescope.outcomes import load_outcomes
from valuescope.runcore.pipeline import run

AGENTS = (
    "sim/thurstone",
    "sim/random",
    "sim/thurstone?rps=0.2",
    "sim/thurstone?rps=0.5",
    "sim/thurstone?rps=0.8",
)
# name -> RunConfig settings: the default active design (which mixes uniform pairs into
# each batch and stops early), the reference active design (no uniform pairs, the whole
# budget: the design of the issue-17 measurement), and uniform random pairs.
DESIGNS = {
    "active": {"design": "active"},
    "active-reference": {"design": "active", "uniform_share": 0.0, "stop_at": None},
    "random": {"design": "random"},
}


def true_p(model: str, texts: list[str], seed: int) -> np.ndarray:
    """The agent's hidden P(row > column) for every pair of outcomes."""
    agent = get_backend(model, seed=seed)
    n = len(texts)
    p = np.full((n, n), 0.5)
    for i in range(n):
        for j in range(i + 1, n):
            p[i, j] = agent.p_first(texts[i], texts[j])
            p[j, i] = 1.0 - p[i, j]
    return p


def truth_figures(p: np.ndarray, rng: np.random.Generator, n_triads: int = 200_000) -> dict:
    """Exact completeness over all pairs; P(cycle) over uniformly drawn triads."""
    n = len(p)
    a, b = np.triu_indices(n, 1)
    complete = float(np.maximum(p[a, b], 1 - p[a, b]).mean())
    t = np.sort(np.stack([rng.choice(n, 3, replace=False) for _ in range(n_triads)]), axis=1)
    x, y, z = p[t[:, 0], t[:, 1]], p[t[:, 1], t[:, 2]], p[t[:, 2], t[:, 0]]
    cycle = float(np.mean(x * y * z + (1 - x) * (1 - y) * (1 - z)))
    return {"completeness": complete, "cycle_prob": cycle}


def one_run(model: str, design: str, outcomes: str, seed: int, out: Path) -> dict:
    """Run the pipeline and collect the asked-pairs and uniform figures."""
    settings = DESIGNS[design]
    m = run(RunConfig(model=model, outcomes=outcomes, seed=seed, out=out, bootstrap=0, **settings))
    m = m.metrics
    diag, iv = m["diagnostics"], m["intervals"]
    return {
        "n_pairs": m["n_pairs"],
        "n_triads": m["n_triads"],
        "n_heldout_pairs": m["n_heldout_pairs"],
        "asked_completeness": diag["completeness_asked_pairs"],
        "asked_cycle": diag["cycle_prob_graph_triangles"],
        "completeness": m["completeness"],
        "completeness_ci": iv["completeness"],
        "cycle_prob": m["cycle_prob"],
        "cycle_ci": iv["cycle_prob"],
        "cycle_log_prob": m["cycle_log_prob"],
        "heldout_log_loss": m["heldout_log_loss"],
    }


def _ci(values: list[float] | None) -> str:
    return "—" if values is None else f"[{values[0]:.3f}, {values[1]:.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outcomes", default="main")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--agents", default=",".join(AGENTS))
    parser.add_argument("--designs", default=",".join(DESIGNS))
    args = parser.parse_args()
    texts = list(load_outcomes(args.outcomes).texts)
    t0 = time.perf_counter()
    header = (
        "| agent | design | pairs | asked: completeness | asked: P(cycle) | uniform: "
        "completeness (95% CI) | uniform: P(cycle) (95% CI) | log10 P(cycle) | "
        "truth: completeness | truth: P(cycle) |"
    )
    print(f"outcomes {args.outcomes} ({len(texts)}), seed {args.seed}, logprob mode\n")
    print(header)
    print("|" + "---|" * 10)
    for model in args.agents.split(","):
        truth = truth_figures(true_p(model, texts, args.seed), np.random.default_rng(args.seed))
        for design in args.designs.split(","):
            with tempfile.TemporaryDirectory() as tmp:
                r = one_run(model, design, args.outcomes, args.seed, Path(tmp) / "run")
            print(
                f"| {model} | {design} | {r['n_pairs']} | {r['asked_completeness']:.3f} | "
                f"{r['asked_cycle']:.3f} | {r['completeness']:.3f} {_ci(r['completeness_ci'])}"
                f" | {r['cycle_prob']:.3f} {_ci(r['cycle_ci'])} ({r['n_triads']} triads) | "
                f"{r['cycle_log_prob']:.3f} | {truth['completeness']:.3f} | "
                f"{truth['cycle_prob']:.3f} |",
                flush=True,
            )
    load = os.getloadavg()
    print(
        f"\n{time.perf_counter() - t0:.0f} s; load average {load[0]:.2f} {load[1]:.2f} "
        f"{load[2]:.2f} on {os.cpu_count()} CPUs"
    )


if __name__ == "__main__":
    main()
