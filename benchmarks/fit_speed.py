"""Fit speed: valuescope's Thurstonian fitter against a paper-style Adam fitter and choix.

Synthetic Thurstonian data: N outcomes with mu ~ N(0, 1) and sigma ~ U(0.2, 1); about
2 N log2 N training pairs (a random cycle plus random pairs) and min(5% of all pairs, 1000)
held-out pairs, as valuescope's random design draws them. Each pair is answered 20 times
(K=10 samples in both orders), so p = wins / 20.

Fitters, timed side by side in one process:
- valuescope: `fit_thurstonian(pairs, p, n)` with its defaults (L-BFGS, analytic gradient),
  as shipped, and again in a child process with OpenBLAS pinned to one thread
  (`valuescope-blas1`; its memory figure stands for both rows).
- paper-adam: the reference recipe written here in numpy (same likelihood, per-outcome mean
  and log-sigma, mean soft-label BCE, Adam lr 0.01, 1000 full-batch epochs).
- paper-adam-torch (`--torch`): the same recipe with torch autograd on one thread.
- choix-ilsr / choix-opt: `choix.ilsr_pairwise` (alpha 0.01) and `choix.opt_pairwise`
  (alpha 0.1, Newton-CG), up to N = 500 and N = 100 (`--choix-max-n` raises both: choix
  keeps a dense N x N matrix and loops in Python over every answer). choix takes
  (winner, loser) tuples, so each pair becomes round(20 p) wins for the first outcome and
  the rest for the second: exact for these data. Their held-out log-loss uses the
  Bradley-Terry prediction expit(theta_a - theta_b).

Time is the best of up to three runs (wall clock); peak memory is tracemalloc's peak during
a separate call (numpy buffers included; the Adam memory run uses 10 epochs, as its peak
does not grow with epochs). Usage::

    python benchmarks/fit_speed.py            # N = 100, 500, 2000, 10000 (a few minutes)
    python benchmarks/fit_speed.py --quick    # N = 100, 500, 2000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.special import expit, ndtr
from scipy.stats import spearmanr

from valuescope.design import (
    decode,
    default_budget,
    heldout_size,
    pair_codes,
    sample_new_codes,
    split_start,
)
from valuescope.fit import fit_thurstonian, log_loss

ANSWERS = 20  # K=10 samples in both orders
FULL_SIZES = (100, 500, 2000, 10_000)
QUICK_SIZES = (100, 500, 2000)
# choix builds a dense N x N Markov chain (ilsr) or loops in Python over every answer (opt).
CHOIX_LIMITS = {"choix-ilsr": 500, "choix-opt": 100}
# Peak memory does not depend on the number of epochs; the memory run of Adam uses fewer.
MEMORY_EPOCHS = 10
# tracemalloc does not see torch's allocator, so torch rows report no memory.
NO_MEMORY = "none"


@dataclass
class Data:
    """Training and held-out pairs with observed p, and the hidden truth."""

    n: int
    pairs: np.ndarray
    p: np.ndarray
    held: np.ndarray
    p_held: np.ndarray
    mu: np.ndarray


@dataclass
class Fitted:
    """What every fitter returns: utilities (for Spearman) and a predictor."""

    mean: np.ndarray
    predict: Callable[[np.ndarray], np.ndarray]
    steps: int


def make_data(n: int, seed: int = 0) -> Data:
    """Synthetic Thurstonian answers on a random design of 2 N log2 N pairs."""
    rng = np.random.default_rng(seed)
    mu = rng.normal(size=n)
    sigma = rng.uniform(0.2, 1.0, n)
    start, held = split_start(n, rng, heldout_size(n))
    used = np.concatenate([pair_codes(start, n), pair_codes(held, n)])
    extra = decode(sample_new_codes(n, default_budget(n) - len(start), used, rng), n)
    pairs = np.concatenate([start, extra])

    def answer(pp: np.ndarray) -> np.ndarray:
        q = ndtr((mu[pp[:, 0]] - mu[pp[:, 1]]) / np.hypot(sigma[pp[:, 0]], sigma[pp[:, 1]]))
        return rng.binomial(ANSWERS, q) / ANSWERS

    return Data(n, pairs, answer(pairs), held, answer(held), mu)


# ---------------------------------------------------------------- fitters


def fit_valuescope(d: Data) -> Fitted:
    """valuescope's fitter with its defaults."""
    res = fit_thurstonian(d.pairs, d.p, d.n)
    return Fitted(res.mean, res.predict, res.n_iter)


def _thurstone_q(mu: np.ndarray, log_sigma: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    a, b = pairs[:, 0], pairs[:, 1]
    return ndtr((mu[a] - mu[b]) / np.sqrt(np.exp(2 * log_sigma[a]) + np.exp(2 * log_sigma[b])))


def paper_adam(d: Data, epochs: int = 1000, lr: float = 0.01, seed: int = 0) -> Fitted:
    """The reference recipe in numpy: mean BCE, hand-written gradient, Adam, full batch."""
    n, a, b, p = d.n, d.pairs[:, 0], d.pairs[:, 1], d.p
    rng = np.random.default_rng(seed)
    theta = np.concatenate([rng.normal(0.0, 0.01, n), np.zeros(n)])  # mu, log sigma
    m1, m2 = np.zeros(2 * n), np.zeros(2 * n)
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    for t in range(1, epochs + 1):
        mu, ls = theta[:n], theta[n:]
        var = np.exp(2 * ls)
        s2 = var[a] + var[b]
        s = np.sqrt(s2)
        z = (mu[a] - mu[b]) / s
        q = np.clip(ndtr(z), 1e-12, 1 - 1e-12)
        # d(mean BCE)/dz = (q - p) / (q (1 - q)) * phi(z) / E
        gz = (q - p) / (q * (1 - q)) * np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi) / len(p)
        g_mu = np.bincount(a, gz / s, minlength=n) - np.bincount(b, gz / s, minlength=n)
        g_s = -gz * z / s2
        g_ls = np.bincount(a, g_s * var[a], minlength=n) + np.bincount(b, g_s * var[b], minlength=n)
        grad = np.concatenate([g_mu, g_ls])
        m1 = beta1 * m1 + (1 - beta1) * grad
        m2 = beta2 * m2 + (1 - beta2) * grad * grad
        step = (m1 / (1 - beta1**t)) / (np.sqrt(m2 / (1 - beta2**t)) + eps)
        theta = theta - lr * step
    mu, ls = theta[:n].copy(), theta[n:].copy()
    return Fitted(_standard(mu), lambda pp: _thurstone_q(mu, ls, pp), epochs)


def paper_adam_torch(d: Data, epochs: int = 1000, lr: float = 0.01, seed: int = 0) -> Fitted:
    """The same recipe with torch autograd (as the reference code runs it)."""
    import torch

    torch.set_num_threads(1)  # faster than 2 threads here, so the stricter baseline
    gen = torch.Generator().manual_seed(seed)
    mu = torch.nn.Parameter(torch.randn(d.n, generator=gen, dtype=torch.float64) * 0.01)
    ls = torch.nn.Parameter(torch.zeros(d.n, dtype=torch.float64))
    a, b = torch.from_numpy(d.pairs[:, 0]), torch.from_numpy(d.pairs[:, 1])
    p = torch.from_numpy(d.p)
    opt = torch.optim.Adam([mu, ls], lr=lr)
    for _ in range(epochs):
        opt.zero_grad()
        scale = torch.sqrt(torch.exp(2 * ls[a]) + torch.exp(2 * ls[b]))
        q = torch.special.ndtr((mu[a] - mu[b]) / scale).clamp(1e-12, 1 - 1e-12)
        loss = torch.nn.functional.binary_cross_entropy(q, p)
        loss.backward()
        opt.step()
    mu_np, ls_np = mu.detach().numpy().copy(), ls.detach().numpy().copy()
    return Fitted(_standard(mu_np), lambda pp: _thurstone_q(mu_np, ls_np, pp), epochs)


def choix_data(d: Data) -> list[tuple[int, int]]:
    """(winner, loser) tuples: round(20 p) wins for the first outcome, the rest for the other."""
    wins = np.rint(d.p * ANSWERS).astype(np.int64)
    first = np.repeat(d.pairs, wins, axis=0)
    second = np.repeat(d.pairs[:, ::-1], ANSWERS - wins, axis=0)
    return [tuple(x) for x in np.concatenate([first, second]).tolist()]


def _bt(theta: np.ndarray, steps: int) -> Fitted:
    theta = np.asarray(theta, dtype=np.float64)
    return Fitted(_standard(theta), lambda pp: expit(theta[pp[:, 0]] - theta[pp[:, 1]]), steps)


def choix_ilsr(d: Data) -> Fitted:
    """choix's iterative Luce spectral ranking (Bradley-Terry)."""
    import choix

    return _bt(choix.ilsr_pairwise(d.n, choix_data(d), alpha=0.01), 0)


def choix_opt(d: Data) -> Fitted:
    """choix's penalised maximum likelihood (Bradley-Terry, Newton-CG)."""
    import choix

    return _bt(choix.opt_pairwise(d.n, choix_data(d), alpha=0.1), 0)


def _standard(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / (x.std() or 1.0)


# ---------------------------------------------------------------- measuring


def best_time(fn: Callable[[], Fitted], budget_s: float = 3.0) -> tuple[float, Fitted]:
    """Best wall time of up to 3 runs (fewer when one run is slow)."""
    times, out = [], None
    while len(times) < 3:
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
        if sum(times) > budget_s:
            break
    return min(times), out


def peak_bytes(fn: Callable[[], object]) -> int:
    """tracemalloc's peak above the starting level while fn runs."""
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak - base


def measure(name: str, d: Data, fit: Callable[[Data], Fitted], mem_fit=None) -> dict:
    """Time, memory, held-out log-loss and Spearman of one fitter on one data set."""
    seconds, res = best_time(lambda: fit(d))
    mem = float("nan") if mem_fit == NO_MEMORY else peak_bytes(lambda: (mem_fit or fit)(d))
    return {
        "fitter": name,
        "n": d.n,
        "pairs": len(d.p),
        "seconds": seconds,
        "peak_mb": mem / 2**20,
        "bytes_per_pair": mem / len(d.p),
        "heldout_log_loss": log_loss(d.p_held, res.predict(d.held)),
        "spearman": float(spearmanr(res.mean, d.mu)[0]),
        "steps": res.steps,
    }


def fitters(n: int, torch_ok: bool, choix_max_n: int | None, child: bool) -> dict[str, tuple]:
    """Fitters to run at size n, each with its memory-run variant (None: the same call)."""
    out: dict[str, tuple] = {
        # when the pinned child runs, it measures valuescope's memory
        "valuescope": (fit_valuescope, NO_MEMORY if child else None),
        "paper-adam": (paper_adam, lambda d: paper_adam(d, epochs=MEMORY_EPOCHS)),
    }
    if torch_ok:
        out["paper-adam-torch"] = (paper_adam_torch, NO_MEMORY)
    for name, fit in (("choix-ilsr", choix_ilsr), ("choix-opt", choix_opt)):
        if n <= (choix_max_n or CHOIX_LIMITS[name]):
            out[name] = (fit, None)
    return out


def child_rows(sizes: list[int], seed: int) -> list[dict]:
    """valuescope's fitter in a child process with OpenBLAS/OpenMP pinned to one thread."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    cmd = [sys.executable, __file__, "--child", "--seed", str(seed), "--sizes", *map(str, sizes)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def print_table(rows: list[dict]) -> None:
    """A markdown table of every measurement."""
    head = "| N | pairs | fitter | seconds | peak MB | bytes/pair | held-out log-loss | Spearman |"
    print(head)
    print("|" + "---|" * 8)
    for r in rows:
        print(
            f"| {r['n']} | {r['pairs']} | {r['fitter']} | {r['seconds']:.3f} | "
            f"{r['peak_mb']:.1f} | {r['bytes_per_pair']:.0f} | {r['heldout_log_loss']:.4f} | "
            f"{r['spearman']:.4f} |"
        )


def summarise(rows: list[dict], load: tuple[float, float]) -> dict:
    """Side-by-side ratios and the targets of the issue."""
    by = {(r["n"], r["fitter"]): r for r in rows}
    sizes = sorted({r["n"] for r in rows})
    out: dict = {"benchmark": "fit_speed", "cpus": os.cpu_count(), "load_avg": load}
    for n in sizes:
        ours, paper = by[(n, "valuescope")], by[(n, "paper-adam")]
        out[f"n{n}"] = {
            "valuescope_s": round(ours["seconds"], 4),
            "paper_adam_s": round(paper["seconds"], 4),
            "speedup_vs_paper": round(paper["seconds"] / ours["seconds"], 2),
            "logloss_minus_paper": round(ours["heldout_log_loss"] - paper["heldout_log_loss"], 5),
            "spearman": round(ours["spearman"], 4),
            "spearman_paper": round(paper["spearman"], 4),
            "bytes_per_pair": round(ours["bytes_per_pair"]),
        }
        pinned = by.get((n, "valuescope-blas1"))
        if pinned:
            out[f"n{n}"]["valuescope_blas1_s"] = round(pinned["seconds"], 4)
            out[f"n{n}"]["speedup_vs_paper_blas1"] = round(paper["seconds"] / pinned["seconds"], 2)
    targets = {}
    if 500 in sizes:
        s = out["n500"]
        targets["n500_speedup_ge_20"] = s["speedup_vs_paper"] >= 20
        if "speedup_vs_paper_blas1" in s:
            targets["n500_speedup_blas1_ge_20"] = s["speedup_vs_paper_blas1"] >= 20
        targets["n500_logloss_within_0.002"] = s["logloss_minus_paper"] <= 0.002
    if 10_000 in sizes:
        s = out["n10000"]
        targets["n10000_under_10s"] = s["valuescope_s"] < 10
        if "valuescope_blas1_s" in s:
            targets["n10000_blas1_under_10s"] = s["valuescope_blas1_s"] < 10
    per_pair = [out[f"n{n}"]["bytes_per_pair"] for n in sizes if n >= 500]
    if per_pair:
        targets["memory_per_pair_within_1.5x"] = max(per_pair) <= 1.5 * min(per_pair)
    out["targets"] = targets
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="N = 100, 500, 2000 only")
    parser.add_argument("--sizes", type=int, nargs="+", help="override the sizes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--torch", action="store_true", help="add the torch Adam fitter")
    parser.add_argument("--choix-max-n", type=int, help="largest N for both choix fitters")
    parser.add_argument("--no-child", action="store_true", help="skip the BLAS-pinned rerun")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sizes = args.sizes or list(QUICK_SIZES if args.quick else FULL_SIZES)
    if args.child:
        rows = [measure("valuescope-blas1", make_data(n, args.seed), fit_valuescope) for n in sizes]
        print(json.dumps(rows))
        return
    if args.torch and not _has_torch():
        parser.error("--torch needs torch installed")
    load0 = os.getloadavg()[0]
    rows = []
    for n in sizes:
        d = make_data(n, args.seed)
        todo = fitters(n, args.torch, args.choix_max_n, not args.no_child)
        for name, (fit, mem_fit) in todo.items():
            rows.append(measure(name, d, fit, mem_fit))
            print(f"# N={n} {name}: {rows[-1]['seconds']:.3f} s", file=sys.stderr, flush=True)
    if not args.no_child:
        pinned = {r["n"]: r for r in child_rows(sizes, args.seed)}
        for r in rows:
            if r["fitter"] == "valuescope":  # memory does not depend on BLAS threads
                r["peak_mb"], r["bytes_per_pair"] = (
                    pinned[r["n"]]["peak_mb"],
                    pinned[r["n"]]["bytes_per_pair"],
                )
        rows += pinned.values()
    rows.sort(key=lambda r: (r["n"], r["fitter"]))
    print_table(rows)
    print(json.dumps(summarise(rows, (round(load0, 2), round(os.getloadavg()[0], 2)))))


def _has_torch() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    main()
