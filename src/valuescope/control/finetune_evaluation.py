"""`valuescope control evaluate`: the model before and after fine-tuning, and prompted.

Three conditions answer every assembly pair in both orders (logprob read-out, the same
template and answer tokens as `valuescope run`):
- before: the base model;
- prompted: the base model with a system prompt stating the assembly's majority
  positions on the training pairs (the cheap baseline);
- after: the fine-tuned model.
Per split (train, heldout, topic) we report agreement with the assembly (accuracy on
pairs it did not tie, KL from its vote share), with 90% bootstrap intervals over pairs,
and paired intervals for the changes. Utilities fitted from each condition's answers
give the political lean (experiments/political.py, on the policy dataset) of each
condition next to the assembly's, with intervals. General ability is checked twice:
accuracy on 40 multiple-choice questions we wrote (control/capability.py, 95% Wilson
intervals, paired change) and the perplexity of a small held-out text
(control/data/capability.txt).
"""

from __future__ import annotations

import math
import time
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from valuescope import stats
from valuescope.control.assembly_run import POLICIES, load_assembly
from valuescope.control.capability import answer_letters, capability_mc_figures, load_questions
from valuescope.control.deliberation import SPLITS
from valuescope.control.errors import ControlError
from valuescope.control.prompts import assembly_view
from valuescope.control.settings import EvaluateConfig
from valuescope.control.train import (
    batch_logprobs,
    build_examples,
    load_backend,
    load_trained,
    require_training_stack,
    resolve_device,
)
from valuescope.runcore.rundir import prepare_out_dir, write_csv, write_json

CONDITIONS = ("before", "prompted", "after")
LEVEL = 0.9  # every interval: BCa bootstrap over pairs (paragraphs), percentile fallback


def evaluate_control(config: EvaluateConfig, progress=None) -> dict[str, Any]:
    """Measure the three conditions and write evaluation.json and answers.csv."""
    t0 = time.perf_counter()
    torch, _, _ = require_training_stack()
    trained = Path(config.trained)
    if not (trained / "train.json").is_file():
        raise ControlError(f"{trained} is not a training directory (no train.json)")
    import json

    info = json.loads((trained / "train.json").read_text())
    assembly_dir = Path(config.assembly or info["assembly"])
    meta, labels = load_assembly(assembly_dir)
    out = prepare_out_dir(Path(config.out or trained / "evaluation"))
    paragraphs = capability_paragraphs(config.capability)

    device = resolve_device(torch, config.device)
    base = load_backend(info["model"], config.threads)
    base.model.to(device)
    view = assembly_view(_positions(labels, config.positions))
    examples = build_examples(base, labels, config.template, SPLITS)
    prompted = build_examples(base, labels, config.template, SPLITS, persona=view)
    questions = load_questions()
    if progress is not None:
        progress.start(3 * len(examples) + 2 * (len(paragraphs) + len(questions)), "evaluating")
    probs = {
        "before": prompt_probs(torch, base, examples, config, progress),
        "prompted": prompt_probs(torch, base, prompted, config, progress),
    }
    nll = {"before": text_nll(torch, base, paragraphs, config, progress)}
    letters = {"before": answer_letters(torch, base, questions, progress)}
    del base
    after, _ = load_trained(trained, config.threads)
    after.model.to(device)
    probs["after"] = prompt_probs(torch, after, examples, config, progress)
    nll["after"] = text_nll(torch, after, paragraphs, config, progress)
    letters["after"] = answer_letters(torch, after, questions, progress)

    table = _answers_table(examples, labels, probs)
    rng_seed = config.seed
    result: dict[str, Any] = {
        "model": info["model"],
        "trained": str(trained),
        "assembly": str(assembly_dir),
        "method": info.get("method"),
        "n_pairs": {s: int((labels["split"] == s).sum()) for s in SPLITS},
        "heldout_topic": meta.get("heldout_topic"),
        "baseline_positions": min(config.positions, int((labels["split"] == "train").sum())),
        "agreement": agreement(table, labels, config.bootstrap, rng_seed),
        "lean": lean_figures(table, labels, meta),
        "capability": capability_figures(nll, config.bootstrap, rng_seed),
        "capability_mc": capability_mc_figures(letters, questions),
        "deliberation_modes": meta.get("modes"),
        "settings": config.model_dump(mode="json"),
        "seconds": time.perf_counter() - t0,
    }
    write_csv(out / "answers.csv", table)
    write_json(out / "evaluation.json", result)
    return result


def capability_paragraphs(path: Path | None) -> list[str]:
    """Paragraphs of the capability text (blank-line separated; # lines are comments)."""
    if path is None:
        raw = (resources.files("valuescope.control") / "data" / "capability.txt").read_text()
    else:
        try:
            raw = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ControlError(f"--capability {path}: cannot read ({exc.strerror})") from None
    lines = [ln for ln in raw.splitlines() if not ln.lstrip().startswith("#")]
    paras = [" ".join(p.split()) for p in "\n".join(lines).split("\n\n")]
    paras = [p for p in paras if p]
    if not paras:
        raise ControlError(f"--capability {path}: no paragraphs of text")
    return paras


def _positions(labels: pd.DataFrame, k: int) -> list[tuple[str, str, float]]:
    """The `k` training pairs the assembly was most united on, as (preferred, other, share)."""
    train = labels[labels["split"] == "train"].copy()
    train["margin"] = (train["p_assembly"] - 0.5).abs()
    train = train[train["margin"] > 0].sort_values(["margin", "pair"], ascending=[False, True])
    out = []
    for _, row in train.head(k).iterrows():
        p = float(row["p_assembly"])
        if p > 0.5:
            out.append((row["outcome_a"], row["outcome_b"], p))
        else:
            out.append((row["outcome_b"], row["outcome_a"], 1 - p))
    return out


def prompt_probs(torch, backend, examples, config: EvaluateConfig, progress=None) -> np.ndarray:
    """(P(first label) renormalised, mass on the two labels) per example, shape (n, 2)."""
    model = backend.model.eval()
    device = next(model.parameters()).device
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].ids))
    out = np.zeros((len(examples), 2))
    before = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        with torch.inference_mode():
            for k in range(0, len(order), config.batch_size):
                chunk = order[k : k + config.batch_size]
                log_a, log_b = batch_logprobs(
                    torch,
                    model,
                    [examples[i].ids for i in chunk],
                    backend.pad_id,
                    backend.answer_ids,
                    device,
                )
                mass = torch.logaddexp(log_a, log_b)
                for j, i in enumerate(chunk):
                    out[i] = (math.exp(float(log_a[j] - mass[j])), math.exp(float(mass[j])))
                if progress is not None:
                    progress.advance(len(chunk))
    finally:
        torch.set_num_threads(before)
    return out


def text_nll(torch, backend, paragraphs, config: EvaluateConfig, progress=None) -> np.ndarray:
    """(summed negative log-likelihood in nats, predicted tokens) per paragraph."""
    model = backend.model.eval()
    device = next(model.parameters()).device
    out = np.zeros((len(paragraphs), 2))
    with torch.inference_mode():
        for i, text in enumerate(paragraphs):
            ids = backend.tokenizer(text, add_special_tokens=False)["input_ids"]
            x = torch.tensor([ids], device=device)
            loss = model(input_ids=x, labels=x).loss
            out[i] = (float(loss) * (len(ids) - 1), len(ids) - 1)
            if progress is not None:
                progress.advance(1)
    return out


def _answers_table(examples, labels, probs) -> pd.DataFrame:
    split = dict(zip(labels["pair"], labels["split"]))
    rows = {
        "pair": [e.pair for e in examples],
        "order": [e.order for e in examples],
        "split": [split[e.pair] for e in examples],
        "q": [e.q for e in examples],
    }
    for cond, arr in probs.items():
        rows[f"p_{cond}"] = arr[:, 0]
        rows[f"mass_{cond}"] = arr[:, 1]
    return pd.DataFrame(rows)


def _kl(q: np.ndarray, p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(q > 0, q * np.log(q / p), 0.0)
        b = np.where(q < 1, (1 - q) * np.log((1 - q) / (1 - p)), 0.0)
    return a + b


def per_pair(table: pd.DataFrame, cond: str) -> pd.DataFrame:
    """Order-averaged P(a > b), KL (mean over the two prompts) and mass per pair."""
    t = table.assign(
        p_ab=np.where(table["order"] == 0, table[f"p_{cond}"], 1 - table[f"p_{cond}"]),
        kl=_kl(table["q"].to_numpy(), table[f"p_{cond}"].to_numpy()),
    )
    return t.groupby("pair").agg(
        p=("p_ab", "mean"),
        kl=("kl", "mean"),
        mass=(f"mass_{cond}", "mean"),
        split=("split", "first"),
    )


def agreement(table: pd.DataFrame, labels: pd.DataFrame, n_boot: int, seed: int) -> dict:
    """Per split: accuracy, KL and answer mass per condition, and the changes, with intervals."""
    truth = labels.set_index("pair")["p_assembly"]
    pairs = {c: per_pair(table, c) for c in CONDITIONS}
    out: dict[str, Any] = {}
    for split in SPLITS:
        ids = pairs["before"].index[pairs["before"]["split"] == split]
        if len(ids) == 0:
            continue
        q = truth.loc[ids].to_numpy()
        decided = q != 0.5
        metrics: dict[str, np.ndarray] = {}
        for c in CONDITIONS:
            p = pairs[c].loc[ids, "p"].to_numpy()
            hit = np.where(p == 0.5, 0.5, ((p - 0.5) * (q - 0.5) > 0).astype(float))
            metrics[f"accuracy_{c}"] = np.where(decided, hit, np.nan)
            metrics[f"kl_{c}"] = pairs[c].loc[ids, "kl"].to_numpy()
            metrics[f"mass_{c}"] = pairs[c].loc[ids, "mass"].to_numpy()
        split_seed = [seed, SPLITS.index(split)]  # every figure of a split: the same draws

        def mean_ci(values: np.ndarray, split_seed: list[int] = split_seed) -> dict:
            return stats.mean_interval(values, np.random.default_rng(split_seed), LEVEL, n_boot)

        entry = {"n_pairs": int(len(ids)), "n_decided": int(decided.sum())}
        for key, v in metrics.items():
            entry[key] = mean_ci(v)
        for metric in ("accuracy", "kl"):
            for c in ("prompted", "after"):
                # the change per pair, then its mean: a paired interval
                entry[f"{metric}_change_{c}"] = mean_ci(
                    metrics[f"{metric}_{c}"] - metrics[f"{metric}_before"]
                )
        out[split] = entry
    return out


def lean_figures(table: pd.DataFrame, labels: pd.DataFrame, meta: dict) -> dict:
    """Lean score of utilities fitted from each condition's answers and the assembly's.

    Only for the policy dataset; utilities come from a Thurstonian fit on every pair
    the assembly voted on (the outcomes that appear in them).
    """
    if meta.get("outcomes_set") != POLICIES:
        return {"note": "lean needs the policy dataset (--outcomes policies)"}
    from valuescope.experiments.political import lean_score
    from valuescope.fit import fit_thurstonian

    ids = np.unique(labels[["a", "b"]].to_numpy())
    index = {int(o): i for i, o in enumerate(ids)}
    texts = dict(zip(labels["a"], labels["outcome_a"])) | dict(
        zip(labels["b"], labels["outcome_b"])
    )
    pairs = np.array([[index[a], index[b]] for a, b in zip(labels["a"], labels["b"])])
    sources = {"assembly": labels.set_index("pair")["p_assembly"]}
    sources |= {c: per_pair(table, c)["p"] for c in CONDITIONS}
    out = {}
    for name, p in sources.items():
        p = np.clip(p.loc[labels["pair"]].to_numpy(), 0.0, 1.0)
        fit = fit_thurstonian(pairs, p, len(ids))
        utilities = {texts[int(o)]: float(fit.mean[i]) for o, i in index.items()}
        try:
            out[name] = lean_score(utilities, seed=0, n_boot=500)
        except Exception as exc:  # too few policies: report why, keep the rest
            out[name] = {"note": str(exc)}
    return out


def capability_figures(nll: dict[str, np.ndarray], n_boot: int, seed: int) -> dict:
    """Perplexity of the held-out text before and after, and the paired change in nats/token."""
    out: dict[str, Any] = {"n_paragraphs": int(len(nll["before"]))}
    for cond, arr in nll.items():
        out[f"perplexity_{cond}"] = float(np.exp(arr[:, 0].sum() / arr[:, 1].sum()))
    per_before = nll["before"][:, 0] / nll["before"][:, 1]
    per_after = nll["after"][:, 0] / nll["after"][:, 1]
    out["nll_change_per_token"] = stats.mean_interval(
        per_after - per_before, np.random.default_rng([seed, 99]), LEVEL, n_boot
    )
    return out
