"""Query efficiency on a real model: the embedded Qwen2.5-Coder-1.5B (llama.cpp) on 20 outcomes.

What is measured on the model itself:

1. `logprob-full`: logprob mode on the full design, both orders of all 190 pairs (380
   queries, `valuescope run ... --mode logprob --design full`).
2. `paper-seed0` and `paper-seed1` (`?seed=1`): two independent paper-protocol samplings
   (K = 10 answers per order, temperature 1) of as many pairs as the CPU allows, in one
   fixed random pair order, saved pair by pair (`--fill --run NAME`, `--share r/m` for m
   processes on one run; a stopped fill keeps its answers and a rerun continues).

With the prefill the backend uses ("I would prefer Option"), a sampled reply's choice is
its first sampled token, drawn from the very distribution logprob mode reads. So the paper
protocol's answers are, in law, K draws of Bernoulli(P(A)) per prompt; (2) checks this
against real samples (mean difference, correlation, squared difference against the
binomial part, binomial tests of the first-option share and of the dispersion, refusals).
On a shared 2-core machine 3,800 sampled answers per paper run (~0.3-0.5 s of CPU each at
one thread) may not fit; the paper-protocol runs are therefore also replayed: `sim/replay`
answers every prompt from the measured logprob table, sampling Bernoulli(P(A)) in sample
mode (refusing with probability 1 - mass). The brief's headline uses the real samples
once both sampled runs are complete (every pair), else the replayed runs; the output says
which (`reference`), and always scores the same sweep against the real reference and
ceiling on the pairs both sampled runs hold.

The reference is `--protocol paper` (sample mode, K = 10, both orders, the reference design
over 2 N log2 N pairs) on the replayed answers, seed 100; an independently seeded second
paper run (seed 101) is the noise ceiling. Against it, through `pipeline.run` (what
`valuescope run` does), over budgets (training pairs) and two design seeds:

- logprob: the default protocol (logprob mode, active design, stopping at 0.99) on the real
  model (its answers come from a copy of `logprob-full`'s cache); logprob-nostop spends the
  whole budget;
- sample-K1 and sample-K3: sample mode, active design, default stopping, replayed.

Scores per run: Spearman of its means with the reference's; held-out agreement, the share
of the pairs the reference asked and the run did not train on that the run orders like the
reference's majority (P = 1/2 left out). The ceiling's held-out agreement is 5-fold: the
second paper run refitted on four fifths of its pairs, scored on the fifth. The real
samples of (2), where there are enough, give the same scores against a real reference.
Four more replayed paper runs (seeds 102-105) give the same scores averaged over every
paper run as the reference in turn (one pair of runs is a noisy ceiling at N = 20).
The script also reads what `sim/noisy` plants from the logprob table (position bias,
per-prompt logit noise, softness of P(A); docs/models.md), and (`agent` phase) repeats the
whole sweep on `sim/noisy` at those defaults, its own paper runs differing in `draw_seed`
only, to show how close the calibrated agent comes to the model.

Resumable: run directories with a metrics.json are read, not rerun. Usage::

    nice -n 15 python benchmarks/real_model_efficiency.py --fill &   # real samples, hours
    nice -n 15 python benchmarks/real_model_efficiency.py --fill --run paper-seed1 &
    nice -n 15 python benchmarks/real_model_efficiency.py            # pool, sweep, agent, tables
    python benchmarks/real_model_efficiency.py --phases analyze      # tables from the run dirs
"""

# ruff: noqa: E402  (OpenBLAS is pinned before numpy is imported)
from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy loads OpenBLAS

import argparse
import json
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import Field
from scipy.special import expit, logit, ndtr
from scipy.stats import binomtest, chi2, norm, pearsonr, spearmanr

from valuescope.common.seeds import stable_seed
from valuescope.errors import ValuescopeError
from valuescope.models.base import Answer, Query
from valuescope.models.sim import REFUSAL_TEXT, SimParams, _SimAgent

ROOT = Path(__file__).resolve().parent
OUTCOMES = ROOT / "real_model_outcomes.txt"
RESULTS = ROOT / "results" / "real_model"
MODEL = "embedded/qwen2.5-coder-1.5b"
# one thread: llama.cpp threads spin while they wait, and the machine is shared; the thread
# count is not part of the answer cache's key
REAL = f"{MODEL}?threads=1"
POOL = "logprob-full"
SAMPLED = "paper-seed0"
# the real sample-mode paper runs: run directory -> model (`?seed=` reseeds every sample)
CEILING_SAMPLED = "paper-seed1"
SAMPLED_RUNS = {SAMPLED: REAL, CEILING_SAMPLED: f"{MODEL}?seed=1&threads=1"}
TABLE = RESULTS / "logprob_table.csv"
REPLAY = f"sim/replay?table={TABLE}"
PAPER_RUNS = {"reference": 100, "ceiling": 101}  # replay seeds of the two paper runs
# four more independent paper runs: the same scores averaged over every run as reference
EXTRA_PAPER = [102, 103, 104, 105]
K_PAPER = 10
BUDGETS = [20, 25, 30, 40, 50, 60, 80, 100, 130, 173]
SEEDS = [0, 1]
PROTOCOLS = {  # name -> (model, RunConfig settings, answer cache it starts from)
    "logprob": (REAL, {"mode": "logprob"}, POOL),
    "logprob-nostop": (REAL, {"mode": "logprob", "stop_at": None}, POOL),
    "sample-K1": (REPLAY, {"mode": "sample", "samples": 1}, None),
    "sample-K3": (REPLAY, {"mode": "sample", "samples": 3}, None),
}
# The same sweep on sim/noisy at its defaults (calibrated on this model): its own paper
# runs (draw_seed reseeds the samples alone) are its reference and ceiling.
AGENT = "sim/noisy?seed=0"
AGENT_PAPER = {"reference": f"{AGENT}&draw_seed=100", "ceiling": f"{AGENT}&draw_seed=101"}
AGENT_PAPER.update({f"extra-{s}": f"{AGENT}&draw_seed={s}" for s in EXTRA_PAPER})
AGENT_PROTOCOLS = {
    "logprob": (AGENT, {"mode": "logprob"}, None),
    "logprob-nostop": (AGENT, {"mode": "logprob", "stop_at": None}, None),
    "sample-K1": (f"{AGENT}&draw_seed=200", {"mode": "sample", "samples": 1}, None),
    "sample-K3": (f"{AGENT}&draw_seed=201", {"mode": "sample", "samples": 3}, None),
}
P_CLIP = 1e-4  # logits of P(A) are read inside [P_CLIP, 1 - P_CLIP]


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def load_average() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


# ---------------------------------------------------------------- the replaying agent


class ReplayParams(SimParams):
    """`sim/replay?table=CSV`: a table of first_text, second_text, p_first, mass."""

    table: str = Field(description="CSV written by this benchmark from a logprob run")


class ReplayAgent(_SimAgent):
    """Answers each prompt from a measured logprob table; samples Bernoulli(P(A)).

    A prompt (first, second) the table lacks is an error. Sample mode refuses with
    probability 1 - mass (the model's probability of a token other than the two labels)
    and at temperature T answers A with probability expit(logit(P(A)) / T).
    """

    Params = ReplayParams

    def __init__(self, kind: str, params: dict[str, str], seed: int = 0) -> None:
        super().__init__(kind, params, seed)
        t = pd.read_csv(self.settings.table)
        self.table = {
            (f, s): (p, m) for f, s, p, m in zip(t.first_text, t.second_text, t.p_first, t.mass)
        }

    def _answer_one(self, q: Query) -> Answer:
        try:
            p, mass = self.table[(q.option_a, q.option_b)]
        except KeyError:
            raise ValuescopeError(f"sim/replay: no answer for {q.option_a!r} first") from None
        if q.mode == "logprob":
            return Answer(p_a=float(p), mass=float(mass))
        rng = np.random.default_rng(stable_seed("replay", self.seed, q.messages, q.sample_index))
        if rng.random() > mass:
            return Answer(text=REFUSAL_TEXT)
        if q.temperature != 1.0:
            z = logit(min(max(p, P_CLIP), 1 - P_CLIP))
            p = expit(z / q.temperature) if q.temperature > 0 else float(z > 0)
        return Answer(text=q.labels[0] if rng.random() < p else q.labels[1])


def register_replay() -> None:
    from valuescope.models.registry import SIM_AGENTS

    SIM_AGENTS["replay"] = ReplayAgent


# ---------------------------------------------------------------- what asks the model


def sample_settings():
    from valuescope.elicit import ElicitSettings

    return ElicitSettings(mode="sample", samples=K_PAPER, temperature=1.0)


def pair_order(n: int) -> np.ndarray:
    """All pairs (a < b) in one fixed random order: a stopped fill covers a random subset."""
    a, b = np.triu_indices(n, 1)
    return np.stack([a, b], axis=1)[np.random.default_rng(20).permutation(len(a))]


def fill(
    name: str = SAMPLED,
    until: str | None = None,
    share: tuple[int, int] = (0, 1),
    reverse: bool = False,
) -> None:
    """Real sample-mode answers (K = 10 per order), pair by pair, into run `name`'s cache.

    Each pair's 20 answers are asked in one call (the backend decodes the 10 samples of a
    prompt side by side) and saved as soon as they exist, so a stopped fill loses at most
    one pair; `valuescope run` on the same cache would find them (llama.cpp answers depend
    on the prompt, the sample index and `?seed=` only). `until` ("HH:MM", UTC) stops
    before the first pair started after that time. `share` (r, m) takes the pairs whose
    place in `pair_order` is r modulo m, so that m processes fill one run together;
    `reverse` walks the order from its end (one more process on a run meets the others
    once, at the last pairs).
    """
    from valuescope.elicit import build_queries, get_template
    from valuescope.elicit.cache import ResponseCache, query_key
    from valuescope.models import get_backend
    from valuescope.outcomes import load_outcomes

    texts = load_outcomes(str(OUTCOMES)).texts
    backend = get_backend(SAMPLED_RUNS[name])
    template, settings = get_template("default"), sample_settings()
    t0, done = time.perf_counter(), 0
    (RESULTS / name).mkdir(parents=True, exist_ok=True)
    with ResponseCache(RESULTS / name / "responses.sqlite") as cache:
        places = list(enumerate(pair_order(len(texts))))
        for place, pair in places[::-1] if reverse else places:
            if place % share[1] != share[0]:
                continue
            if until and time.strftime("%H:%M", time.gmtime()) >= until:
                _log(f"stopped at {until} UTC")
                break
            queries = build_queries(texts, pair[None], template, settings)
            keys = [query_key(backend.name, q) for q in queries]
            have = cache.get_many(keys)
            missing = [i for i, k in enumerate(keys) if k not in have]
            if not missing:
                continue
            answers = backend.answer([queries[i] for i in missing])
            cache.put_many((keys[i], backend.name, queries[i], a) for i, a in zip(missing, answers))
            done += len(missing)
            rate = done / (time.perf_counter() - t0)
            _log(
                f"{name}: {cache.count()} answers cached, {rate:.3f} queries/s, "
                f"load {load_average()}"
            )
    _log(f"complete ({done} new answers, {time.perf_counter() - t0:.0f} s)")


def sample_speed(n_pairs: int = 2) -> dict:
    """Samples/s of the first `n_pairs` of `pair_order` (K = 10, both orders), each sample
    asked alone (`?batch=1`) and per prompt (the default), and whether the texts agree
    with each other and with paper-seed0's cache."""
    from valuescope.elicit import build_queries, get_template
    from valuescope.elicit.cache import ResponseCache, query_key
    from valuescope.models import get_backend
    from valuescope.outcomes import load_outcomes

    texts = load_outcomes(str(OUTCOMES)).texts
    pairs = pair_order(len(texts))[:n_pairs]
    queries = build_queries(texts, pairs, get_template("default"), sample_settings())
    out: dict = {"samples": len(queries)}
    got = {}
    for label, model in (("alone", f"{REAL}&batch=1"), ("per_prompt", REAL)):
        backend = get_backend(model)
        load = load_average()
        t0 = time.perf_counter()
        got[label] = [a.text for a in backend.answer(queries)]
        rate = len(queries) / (time.perf_counter() - t0)
        out[label] = {"samples_per_s": rate, "load_before": load, "load_after": load_average()}
        _log(f"{label}: {rate:.3f} samples/s, load {load} -> {load_average()}")
        keys = [query_key(backend.name, q) for q in queries]
        del backend
    with ResponseCache(RESULTS / SAMPLED / "responses.sqlite") as cache:
        have = cache.get_many(keys)
    out["same_texts"] = sum(a == b for a, b in zip(got["alone"], got["per_prompt"]))
    out["cached"] = len(have)
    out["same_as_cached"] = sum(
        have[k].text == t for k, t in zip(keys, got["per_prompt"]) if k in have
    )
    return out


def pool() -> None:
    """The real logprob run over every pair (both orders), and the table sim/replay reads."""
    out = RESULTS / POOL
    if not (out / "metrics.json").exists():
        cmd = ["valuescope", "run", REAL, "--outcomes", str(OUTCOMES), "--out", str(out)]
        cmd += ["--mode", "logprob", "--design", "full", "--bootstrap", "0", "--overwrite", "-q"]
        _log(" ".join(cmd))
        subprocess.run(["nice", "-n", "15", *cmd], check=True)
    ans = pd.read_parquet(out / "answers.parquet")
    table = ans.groupby(["first_text", "second_text"], as_index=False).agg(
        p_first=("p_first", "mean"), mass=("answer_mass", "mean")
    )
    if len(table) != len(ans):
        raise SystemExit(f"{out}: expected one logprob answer per prompt")
    table.to_csv(TABLE, index=False)


def run_once(out: Path, model: str, settings: dict, cache_from: str | None = None) -> dict:
    """pipeline.run into `out` unless it holds a finished run; returns its metrics."""
    from valuescope.config import RunConfig
    from valuescope.runcore.pipeline import run

    if (out / "metrics.json").exists():
        return json.loads((out / "metrics.json").read_text())
    out.mkdir(parents=True, exist_ok=True)
    if cache_from and not (out / "responses.sqlite").exists():
        shutil.copy(RESULTS / cache_from / "responses.sqlite", out / "responses.sqlite")
    cfg = RunConfig(model=model, outcomes=str(OUTCOMES), out=out, bootstrap=0, **settings)
    t0 = time.perf_counter()
    m = run(cfg, overwrite=True).metrics
    _log(
        f"{out.name}: {m['n_pairs']} pairs, {m['n_queries']} queries "
        f"({m['n_queries_new']} new), {time.perf_counter() - t0:.1f} s"
    )
    return m


def sweep(root: Path, paper: dict[str, str], protocols: dict) -> None:
    """The two paper runs, then every protocol x budget x design seed, under `root`."""
    register_replay()
    for name, model in paper.items():
        run_once(root / f"paper-{name}", model, {"protocol": "paper"})
    for name, (model, settings, cache_from) in protocols.items():
        for budget in BUDGETS:
            for seed in SEEDS:
                out = root / "sweep" / f"{name}-b{budget}-s{seed}"
                run_once(out, model, {**settings, "budget": budget, "seed": seed}, cache_from)


# ---------------------------------------------------------------- analysis


def read_means(run: Path) -> np.ndarray:
    return pd.read_csv(run / "utilities.csv").sort_values("id")["mean"].to_numpy()


def read_pairs(run: Path) -> pd.DataFrame:
    """pairs.csv with every pair as (lo, hi) and p = P(lo > hi)."""
    t = pd.read_csv(run / "pairs.csv")
    swap = t.a > t.b
    lo, hi = np.where(swap, t.b, t.a), np.where(swap, t.a, t.b)
    return t.assign(a=lo, b=hi, p=np.where(swap, 1 - t.p, t.p))


def majority(pairs: np.ndarray, p: np.ndarray) -> dict[tuple[int, int], int]:
    """(lo, hi) -> +1 where the reference prefers lo, -1 where hi; exact halves left out."""
    return {(int(a), int(b)): int(np.sign(q - 0.5)) for (a, b), q in zip(pairs, p) if q != 0.5}


def agreement(means: np.ndarray, pairs: list[tuple[int, int]], major: dict) -> float:
    scored = [(a, b) for a, b in pairs if (a, b) in major]
    hits = [np.sign(means[a] - means[b]) == major[(a, b)] for a, b in scored]
    return float(np.mean(hits)) if hits else float("nan")


def score_run(run: Path, ref_means: np.ndarray, major: dict) -> dict:
    metrics = json.loads((run / "metrics.json").read_text())
    means, pairs = read_means(run), read_pairs(run)
    trained = {(a, b) for a, b, s in zip(pairs.a, pairs.b, pairs.split) if s == "train"}
    held = [pair for pair in major if pair not in trained]
    k = metrics["samples"] if metrics["mode"] == "sample" else 1
    return {
        "pairs": metrics["n_pairs"],
        "train_queries": metrics["n_pairs"] * 2 * k,
        "queries": metrics["n_queries"],
        "stopped_early": metrics["stopping"]["stopped_early"],
        "spearman": float(spearmanr(means, ref_means)[0]),
        "heldout_agreement": agreement(means, held, major),
        "n_heldout_scored": len(held),
    }


def fit_means(pairs: np.ndarray, p: np.ndarray, n: int) -> np.ndarray:
    """Means of the fit a run makes (fit_thurstonian without weights, as the pipeline)."""
    from valuescope.fit import fit_thurstonian

    return fit_thurstonian(np.asarray(pairs), np.asarray(p), n).mean


def fold_agreement(pairs: np.ndarray, p: np.ndarray, n: int, major: dict, folds: int = 5) -> float:
    """Held-out agreement of a paper run with `major`, refitted on 4/5 of its pairs."""
    idx = np.random.default_rng(0).permutation(len(pairs))
    hits, total = 0, 0
    for f in range(folds):
        test = np.zeros(len(pairs), bool)
        test[idx[f::folds]] = True
        means = fit_means(pairs[~test], p[~test], n)
        held = [(int(a), int(b)) for a, b in pairs[test] if (int(a), int(b)) in major]
        hits += sum(np.sign(means[a] - means[b]) == major[(a, b)] for a, b in held)
        total += len(held)
    return hits / total


def ceiling(run: Path, ref_means: np.ndarray, major: dict, folds: int = 5) -> dict:
    """The second paper run against the first: Spearman, and 5-fold held-out agreement."""
    t, n = read_pairs(run), len(ref_means)
    pairs, p = t[["a", "b"]].to_numpy(), t.p.to_numpy()
    hits_total = fold_agreement(pairs, p, n, major, folds)
    m = json.loads((run / "metrics.json").read_text())
    return {
        "pairs": m["n_pairs"],
        "queries": m["n_queries"],
        "spearman": float(spearmanr(read_means(run), ref_means)[0]),
        "heldout_agreement": hits_total,
        "agreement_fitted_pairs": agreement(read_means(run), list(major), major),
    }


def cached_answers(name: str, mode: str) -> dict:
    """A run directory's cached answers for the pairs answered fully, in `pair_order`.

    Returns pairs (lo, hi), p (P(lo > hi), refusals as 1/2, as a run aggregates them),
    first (P(first option) per pair and order, over the samples, refusals left out),
    refused (per pair) and k.
    """
    from valuescope.elicit import ElicitSettings, aggregate, build_queries, get_template
    from valuescope.elicit.cache import ResponseCache, query_key
    from valuescope.outcomes import load_outcomes

    path = RESULTS / name / "responses.sqlite"
    with sqlite3.connect(path) as db:
        query = "SELECT DISTINCT model FROM responses WHERE mode=?"
        models = [r[0] for r in db.execute(query, (mode,))]
    if len(models) != 1:
        raise SystemExit(f"{path}: expected answers of one model in {mode} mode, found {models}")
    texts = load_outcomes(str(OUTCOMES)).texts
    settings = sample_settings() if mode == "sample" else ElicitSettings(mode="logprob")
    pairs = pair_order(len(texts))
    queries = build_queries(texts, pairs, get_template("default"), settings)
    keys = [query_key(models[0], q) for q in queries]
    with ResponseCache(path) as cache:
        found = cache.get_many(keys)
    per = len(queries) // len(pairs)
    full = [e for e in range(len(pairs)) if all(k in found for k in keys[e * per : (e + 1) * per])]
    answers = [found[keys[e * per + j]] for e in full for j in range(per)]
    got = aggregate(pairs[full], answers, settings)
    with np.errstate(all="ignore"):  # a prompt whose samples were all refused: NaN
        first = np.stack(
            [np.nanmean(got.prefs[:, 0, :], axis=1), 1 - np.nanmean(got.prefs[:, 1, :], axis=1)],
            axis=1,
        )
    valid = (~np.isnan(got.prefs)).sum(axis=2)
    chose_a = np.nansum(got.prefs, axis=2)
    return {
        "pairs": pairs[full],
        "p": got.p,
        "first": first,
        "refused": got.n_refused,
        "n_valid": valid,  # per pair and order: readable answers
        "n_first": np.stack([chose_a[:, 0], valid[:, 1] - chose_a[:, 1]], axis=1),
        "k": got.prefs.shape[2],
        "n": len(texts),
    }


PER_PAIR = ("pairs", "p", "first", "refused", "n_valid", "n_first")


def restrict(answers: dict, keep: set[tuple[int, int]]) -> dict:
    """`cached_answers` of the pairs in `keep` only (in the same order)."""
    rows = [e for e, (a, b) in enumerate(answers["pairs"]) if (int(a), int(b)) in keep]
    return {**answers, **{k: answers[k][rows] for k in PER_PAIR}}


def calibration(lp: dict, s: dict) -> dict:
    """Sampled first-option counts against Binomial(n, logprob P(first)), prompt by prompt.

    `first_share_z` tests the pooled share of first-option answers (position bias alike in
    both modes); the dispersion chi-square tests whether counts stray from their binomial
    expectation more than chance allows (df: prompts); `share_p_below_05` is the share of
    prompts an exact binomial test rejects at 5% (about 0.05 or less when calibrated).
    """
    index = {(int(a), int(b)): e for e, (a, b) in enumerate(lp["pairs"])}
    rows = [index[(int(a), int(b))] for a, b in s["pairs"]]
    p = np.clip(lp["first"][rows].ravel(), 1e-6, 1 - 1e-6)
    k, n = s["n_first"].ravel().astype(int), s["n_valid"].ravel().astype(int)
    ok = n > 0
    p, k, n = p[ok], k[ok], n[ok]
    expected, var = n * p, n * p * (1 - p)
    z = float((k.sum() - expected.sum()) / np.sqrt(var.sum()))
    x2 = float(((k - expected) ** 2 / var).sum())
    exact = np.array([binomtest(int(a), int(b), float(q)).pvalue for a, b, q in zip(k, n, p)])
    return {
        "prompts": int(ok.sum()),
        "samples": int(n.sum()),
        "first_share_sampled": float(k.sum() / n.sum()),
        "first_share_logprob": float(expected.sum() / n.sum()),
        "first_share_z": z,
        "first_share_p": float(2 * norm.sf(abs(z))),
        "dispersion_chi2": x2,
        "dispersion_df": int(ok.sum()),
        "dispersion_p": float(chi2.sf(x2, int(ok.sum()))),
        "share_p_below_05": float(np.mean(exact < 0.05)),
    }


def logprob_vs_sample(lp: dict, s: dict) -> dict:
    """Logprob P(first option) against the real sampled share, prompt by prompt."""
    index = {(int(a), int(b)): e for e, (a, b) in enumerate(lp["pairs"])}
    rows = [index[(int(a), int(b))] for a, b in s["pairs"]]
    p_lp, p_s = lp["first"][rows].ravel(), s["first"].ravel()
    ok = ~np.isnan(p_s)
    p_lp, p_s = p_lp[ok], p_s[ok]
    d = p_s - p_lp
    return {
        "pairs": len(s["pairs"]),
        "prompts": int(ok.sum()),
        "p_first_logprob": float(p_lp.mean()),
        "p_first_sampled": float(p_s.mean()),
        "mean_difference": float(d.mean()),
        "mean_difference_se": float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else None,
        "pearson": float(pearsonr(p_lp, p_s)[0]) if len(d) > 2 else None,
        "mean_squared_difference": float((d**2).mean()),
        # what binomial sampling around the logprob P alone gives
        "binomial_expected": float(np.mean(p_lp * (1 - p_lp) / s["k"])),
        "extremeness_logprob": float(np.abs(p_lp - 0.5).mean()),
        "extremeness_sampled": float(np.abs(p_s - 0.5).mean()),
        "refusal_rate": float(s["refused"].sum() / (len(s["pairs"]) * 2 * s["k"])),
    }


def noise_model(lp: dict, mass: np.ndarray) -> dict:
    """sim/noisy's parameters read from the logprob answers (both orders of every pair).

    With z_ab = s * d_ab + b + e_ab and z_ba = -s * d_ab + b + e_ba (logits of P(first)),
    (z_ab + z_ba) / 2 has mean b (the first-option bias) and sd noise / sqrt(2); the signal
    (z_ab - z_ba) / 2 sets the softness s (matched by its median, `softness`).
    """
    z = logit(np.clip(lp["first"], P_CLIP, 1 - P_CLIP))
    both, signal = (z[:, 0] + z[:, 1]) / 2, (z[:, 0] - z[:, 1]) / 2
    prompt_noise = float(np.sqrt(2) * both.std(ddof=1))
    median_signal = float(np.median(np.abs(signal)))
    return {
        "pairs": len(z),
        "first_bias": float(both.mean()),
        "first_bias_se": float(both.std(ddof=1) / np.sqrt(len(z))),
        "prompt_noise": prompt_noise,
        "median_abs_signal": median_signal,
        "scale": softness(median_signal, prompt_noise),
        "p_first": float(lp["first"].mean()),
        "share_decisive": float(np.mean((lp["first"] < 0.05) | (lp["first"] > 0.95))),
        "order_flip_share": float(np.mean(np.sign(z[:, 0]) == np.sign(z[:, 1]))),
        "mass_mean": float(mass.mean()),
        "mass_min": float(mass.min()),
    }


def softness(target: float, prompt_noise: float, draws: int = 200_000) -> float:
    """The scale at which sim/noisy's median |signal logit| is `target`.

    sim/noisy's signal (z_ab - z_ba) / 2 is scale * logit(P_thurstone) plus noise of sd
    prompt_noise / sqrt(2); its utilities are mu ~ N(0, 1), sigma ~ U(0.2, 1) per outcome.
    """
    rng = np.random.default_rng(0)
    mu, sigma = rng.normal(size=(2, draws)), rng.uniform(0.2, 1.0, size=(2, draws))
    true = logit(np.clip(ndtr((mu[0] - mu[1]) / np.hypot(*sigma)), 1e-6, 1 - 1e-6))
    noise = rng.normal(scale=prompt_noise / np.sqrt(2), size=draws)
    lo, hi = 0.0, 20.0
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if np.median(np.abs(mid * true + noise)) < target else (lo, mid)
    return (lo + hi) / 2


def sweep_rows(ref_means: np.ndarray, major: dict, root: Path = RESULTS) -> list[dict]:
    rows = []
    for name in PROTOCOLS:
        for budget in BUDGETS:
            for seed in SEEDS:
                run = root / "sweep" / f"{name}-b{budget}-s{seed}"
                if (run / "metrics.json").exists():
                    score = score_run(run, ref_means, major)
                    rows.append({"protocol": name, "budget": budget, "seed": seed, **score})
    return rows


def summarize(rows: list[dict]) -> pd.DataFrame:
    cols = ["pairs", "train_queries", "queries", "spearman", "heldout_agreement"]
    return pd.DataFrame(rows).groupby(["protocol", "budget"])[cols].mean().reset_index()


def reach(summary: pd.DataFrame, ceil: dict, paper_queries: int) -> dict:
    """Per protocol and metric: the fewest mean queries whose mean score >= ceiling - 0.02."""
    out = {}
    for metric in ("spearman", "heldout_agreement"):
        target = ceil[metric] - 0.02
        for name in PROTOCOLS:
            ok = summary[(summary.protocol == name) & (summary[metric] >= target)]
            first = ok.sort_values("queries").iloc[0] if len(ok) else None
            out[f"{name}/{metric}"] = {
                "target": target,
                "budget": None if first is None else int(first.budget),
                "queries": None if first is None else float(first.queries),
                "ratio": None if first is None else paper_queries / float(first.queries),
            }
    return out


def real_paper(ref: dict, other: dict, paper_queries: int) -> dict | None:
    """Reference and noise ceiling from real samples: the two sampled runs, common pairs.

    paper-seed0 (the reference) and paper-seed1 (the ceiling) are the paper protocol's
    K = 10 answers in both orders; complete, they cover the full design (every pair),
    else the first pairs of `pair_order` that both hold, a random subset, which lowers the
    ceiling (`replayed_same_pairs` gives the replayed ceiling on the same pairs).
    """
    n = ref["n"]
    both = {tuple(map(int, e)) for e in ref["pairs"]} & {tuple(map(int, e)) for e in other["pairs"]}
    if len(both) < 2 * n:
        return None
    ref, other = restrict(ref, both), restrict(other, both)
    means = fit_means(ref["pairs"], ref["p"], n)
    major = majority(ref["pairs"], ref["p"])
    other_means = fit_means(other["pairs"], other["p"], n)
    ceil = {
        "pairs": len(both),
        "queries": len(both) * 2 * ref["k"],
        "spearman": float(spearmanr(other_means, means)[0]),
        "heldout_agreement": fold_agreement(other["pairs"], other["p"], n, major),
        "agreement_fitted_pairs": agreement(other_means, list(major), major),
    }
    paper = {name: RESULTS / f"paper-{name}" for name in PAPER_RUNS}
    rows = [
        {"protocol": f"paper-{name} (replayed)", "budget": 0, "seed": 0}
        | score_run(run, means, major)
        for name, run in paper.items()
    ]
    rows += sweep_rows(means, major)
    summary = summarize(rows)
    return {
        "complete": len(both) == n * (n - 1) // 2,
        "pairs": len(both),
        "reference_queries": len(both) * 2 * ref["k"],
        "paper_queries": paper_queries,
        "ceiling": ceil,
        "replayed_same_pairs": replayed_ceiling(ref["pairs"], n),
        "reach": reach(summary[~summary.protocol.str.startswith("paper")], ceil, paper_queries),
        "summary": summary.to_dict("records"),
        "replay_fidelity": replay_fidelity(ref),
    }


def replayed_pair_p(pairs: np.ndarray, seed: int) -> np.ndarray:
    """P(lo > hi) per pair of a replayed K = 10 paper run on `pairs`."""
    from valuescope.elicit import aggregate, build_queries, get_template
    from valuescope.outcomes import load_outcomes

    texts = load_outcomes(str(OUTCOMES)).texts
    queries = build_queries(texts, pairs, get_template("default"), sample_settings())
    agent = ReplayAgent("replay", {"table": str(TABLE)}, seed=seed)
    return aggregate(pairs, agent.answer(queries), sample_settings()).p


def replayed_ceiling(pairs: np.ndarray, n: int, runs: int = 4) -> dict:
    """The ceiling of replayed paper runs on `pairs`: `runs` reference/ceiling pairs, mean."""
    got = []
    for r in range(runs):
        p_ref, p_other = replayed_pair_p(pairs, 2000 + 2 * r), replayed_pair_p(pairs, 2001 + 2 * r)
        means, major = fit_means(pairs, p_ref, n), majority(pairs, p_ref)
        got.append(
            (
                float(spearmanr(fit_means(pairs, p_other, n), means)[0]),
                fold_agreement(pairs, p_other, n, major),
            )
        )
    sp, ag = np.mean(got, axis=0)
    return {"runs": runs, "spearman": float(sp), "heldout_agreement": float(ag)}


def replay_fidelity(ref: dict, draws: int = 10) -> dict:
    """Does replaying reproduce real sampling? Both fitted on the same pairs, K = 10.

    Spearman between the fit of the real samples and fits of replayed samples of the same
    pairs (`draws` replay seeds), against Spearman between two replayed fits: equal in
    expectation if a real sample is a Bernoulli(P(A)) draw from the logprob P(A).
    """
    from valuescope.elicit import aggregate, build_queries, get_template
    from valuescope.outcomes import load_outcomes

    texts = load_outcomes(str(OUTCOMES)).texts
    queries = build_queries(texts, ref["pairs"], get_template("default"), sample_settings())
    real = fit_means(ref["pairs"], ref["p"], ref["n"])
    fits = []
    for seed in range(draws):
        agent = ReplayAgent("replay", {"table": str(TABLE)}, seed=1000 + seed)
        got = aggregate(ref["pairs"], agent.answer(queries), sample_settings())
        fits.append(fit_means(ref["pairs"], got.p, ref["n"]))
    real_vs = [float(spearmanr(real, f)[0]) for f in fits]
    among = [float(spearmanr(a, b)[0]) for i, a in enumerate(fits) for b in fits[i + 1 :]]
    return {
        "pairs": len(ref["pairs"]),
        "real_vs_replayed": float(np.mean(real_vs)),
        "real_vs_replayed_sd": float(np.std(real_vs, ddof=1)),
        "replayed_vs_replayed": float(np.mean(among)),
        "replayed_vs_replayed_sd": float(np.std(among, ddof=1)),
    }


def reference_of(run: Path) -> tuple[np.ndarray, dict]:
    """A paper run's means and the majority of its pairs."""
    t = read_pairs(run)
    return read_means(run), majority(t[["a", "b"]].to_numpy(), t.p.to_numpy())


def score_set(root: Path) -> dict:
    """Ceiling, per-budget summary and reach for the runs under `root`.

    The brief's figures use paper-reference as the reference and paper-ceiling as the
    ceiling; `averaged` repeats them with every paper run as the reference in turn (the
    ceiling then averages the other paper runs against it), which halves the noise of a
    single pair of runs.
    """
    ref_run = root / "paper-reference"
    ref_means, major = reference_of(ref_run)
    paper_queries = json.loads((ref_run / "metrics.json").read_text())["n_queries"]
    ceil = ceiling(root / "paper-ceiling", ref_means, major)
    rows = sweep_rows(ref_means, major, root)
    summary = summarize(rows)
    papers = sorted(p for p in root.glob("paper-*") if (p / "metrics.json").exists())
    all_rows, ceilings = [], []
    for ref in papers:
        means, maj = reference_of(ref)
        ceilings += [ceiling(other, means, maj) for other in papers if other != ref]
        all_rows += sweep_rows(means, maj, root)
    avg_ceiling = {
        k: float(np.mean([c[k] for c in ceilings])) for k in ("spearman", "heldout_agreement")
    }
    avg_summary = summarize(all_rows)
    return {
        "paper_queries": paper_queries,
        "ceiling": ceil,
        "reach": reach(summary, ceil, paper_queries),
        "summary": summary.to_dict("records"),
        "runs": rows,
        "averaged": {
            "paper_runs": len(papers),
            "ceiling": avg_ceiling,
            "ceiling_sd": {k: float(np.std([c[k] for c in ceilings], ddof=1)) for k in avg_ceiling},
            "reach": reach(avg_summary, avg_ceiling, paper_queries),
            "summary": avg_summary.to_dict("records"),
        },
    }


def analyze(agent: bool) -> dict:
    lp = cached_answers(POOL, "logprob")
    mass = pd.read_csv(TABLE)["mass"].to_numpy()
    sampled = {name: cached_answers(name, "sample") for name in SAMPLED_RUNS}
    replayed = score_set(RESULTS)
    real = real_paper(*sampled.values(), replayed["paper_queries"])
    headline = real if real and real["complete"] else replayed
    result = {
        "model": MODEL,
        "outcomes": lp["n"],
        # the brief's figures: real samples once both runs are complete, else replayed
        "reference": "real samples" if headline is real else "replayed (sim/replay)",
        "headline_reach": headline["reach"],
        **replayed,
        "logprob_vs_sample": {
            name: logprob_vs_sample(lp, s) for name, s in sampled.items() if len(s["pairs"])
        },
        "calibration": {name: calibration(lp, s) for name, s in sampled.items() if len(s["pairs"])},
        "noise_model": noise_model(lp, mass),
        "real_reference": real,
        "load_average": load_average(),
    }
    if agent and (RESULTS / "agent" / "paper-ceiling" / "metrics.json").exists():
        result["agent"] = {"model": AGENT, **score_set(RESULTS / "agent")}
    return result


def print_summary(rows: list[dict], header: bool = True) -> None:
    """The protocol x budget table, one Markdown row per summary row."""
    if header:
        print("| protocol | budget | pairs | queries | Spearman | held-out agreement |")
        print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['protocol']} | {r['budget']} | {r['pairs']:.1f} | {r['queries']:.0f} | "
            f"{r['spearman']:.3f} | {r['heldout_agreement']:.3f} |"
        )


def print_set(title: str, scored: dict) -> None:
    c = scored["ceiling"]
    print(f"\n{title}: paper protocol {scored['paper_queries']} queries")
    print(
        f"noise ceiling ({c['pairs']} pairs, {c['queries']} queries): Spearman "
        f"{c['spearman']:.3f}, held-out agreement {c['heldout_agreement']:.3f} (5-fold; "
        f"fitted pairs {c['agreement_fitted_pairs']:.3f})"
    )
    print_summary(scored["summary"])
    print(json.dumps(scored["reach"], indent=1))
    avg = scored["averaged"]
    print(f"averaged over {avg['paper_runs']} paper runs as reference: ceiling {avg['ceiling']}")
    print_summary(avg["summary"], header=False)
    print(json.dumps(avg["reach"], indent=1))


def print_tables(result: dict) -> None:
    print(f"headline reference: {result['reference']}")
    print_set(f"{MODEL}, N={result['outcomes']} (paper runs replayed)", result)
    keys = ("logprob_vs_sample", "calibration", "noise_model")
    print(json.dumps({k: result[k] for k in keys}, indent=1))
    real = result["real_reference"]
    if real:
        state = "complete" if real["complete"] else f"partial: {real['pairs']} pairs"
        c = real["ceiling"]
        print(
            f"\nreal samples as reference and ceiling ({state}; reference "
            f"{real['reference_queries']} queries): ceiling Spearman {c['spearman']:.3f}, "
            f"held-out agreement {c['heldout_agreement']:.3f} (5-fold; fitted pairs "
            f"{c['agreement_fitted_pairs']:.3f}); replayed on the same pairs: "
            f"{real['replayed_same_pairs']}"
        )
        print_summary(real["summary"])
        print(json.dumps(real["reach"], indent=1))
        print(json.dumps(real["replay_fidelity"], indent=1))
    if "agent" in result:
        print_set(f"{AGENT} (the calibrated agent), N={result['outcomes']}", result["agent"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fill", action="store_true", help="only ask real sample-mode answers")
    ap.add_argument("--run", default=SAMPLED, choices=list(SAMPLED_RUNS), help="run to --fill")
    ap.add_argument("--until", help="stop --fill after this time (HH:MM, UTC)")
    ap.add_argument("--share", default="0/1", help="--fill pairs r of every m (r/m)")
    ap.add_argument("--reverse", action="store_true", help="--fill from the last pair")
    ap.add_argument(
        "--phases",
        default="pool,sweep,agent,analyze",
        help="of pool, sweep, agent, analyze, speed (sample mode: alone vs per prompt)",
    )
    args = ap.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    _log(f"load average {load_average()}")
    if args.fill:
        r, m = (int(x) for x in args.share.split("/"))
        fill(args.run, args.until, (r, m), args.reverse)
        return
    phases = args.phases.split(",")
    if "pool" in phases:
        pool()
    if "sweep" in phases:
        paper = {name: f"{REPLAY}&seed={seed}" for name, seed in PAPER_RUNS.items()}
        paper.update({f"extra-{s}": f"{REPLAY}&seed={s}" for s in EXTRA_PAPER})
        sweep(RESULTS, paper, PROTOCOLS)
    if "agent" in phases:
        sweep(RESULTS / "agent", AGENT_PAPER, AGENT_PROTOCOLS)
    if "speed" in phases:
        speed = sample_speed()
        (RESULTS / "sample_speed.json").write_text(json.dumps(speed, indent=1))
        print(json.dumps(speed, indent=1))
    if "analyze" in phases:
        result = analyze("agent" in phases or (RESULTS / "agent").exists())
        result["wall_s"] = time.perf_counter() - t0
        (RESULTS.parent / "real_model_efficiency.json").write_text(json.dumps(result, indent=1))
        print_tables(result)
    _log(f"done in {time.perf_counter() - t0:.0f} s; load average {load_average()}")


if __name__ == "__main__":
    main()
