"""How coherence changes with model size: paired differences on shared held-out pairs.

Runs of the same outcomes with the same seed share their held-out pairs (the uniform
pairs are drawn before any model answers), so the change from a smaller to a larger
model can be measured pair by pair: the per-pair scores of the two runs are differenced
and the mean difference gets a bootstrap interval over those pairs. That interval is
much tighter than comparing the two runs' own intervals, and it is honest only because
the pairs are the same ones; pairs are matched by the texts of their two outcomes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from valuescope import stats
from valuescope.report.html import RunData
from valuescope.runcore.fit_evaluation import per_pair_scores

TREND_METRICS = ("heldout_accuracy", "heldout_log_loss", "completeness")
COLUMNS = [
    "smaller", "larger", "smaller_params", "larger_params", "metric", "n_heldout_shared",
    "smaller_value", "larger_value", "difference", "ci_low", "ci_high",
]  # fmt: skip


def _key(text: object) -> str:
    return " ".join(str(text).split()).casefold()


def heldout_scores(run: RunData) -> pd.DataFrame:
    """Per held-out pair: the two outcome keys (sorted) and the scores, oriented to them."""
    pairs = run.pairs
    if pairs is None or "split" not in pairs or not {"p", "q"} <= set(pairs):
        return pd.DataFrame(columns=["key_a", "key_b", *TREND_METRICS])
    held = pairs[pairs["split"] == "heldout"].dropna(subset=["p", "q"])
    names = dict(zip(run.utilities["id"].astype(str), run.utilities["outcome"].map(_key)))
    ka = held["a"].astype(str).map(names)
    kb = held["b"].astype(str).map(names)
    keep = ka.notna() & kb.notna()
    ka, kb, held = ka[keep], kb[keep], held[keep]
    flip = (ka > kb).to_numpy()
    p = np.where(flip, 1 - held["p"].to_numpy(float), held["p"].to_numpy(float))
    q = np.where(flip, 1 - held["q"].to_numpy(float), held["q"].to_numpy(float))
    scores = per_pair_scores(p, q)
    out = pd.DataFrame(
        {
            "key_a": np.where(flip, kb, ka),
            "key_b": np.where(flip, ka, kb),
            **{m: scores[m] for m in TREND_METRICS},
        }
    )
    return out.drop_duplicates(["key_a", "key_b"])


def size_trend(
    runs: list[RunData],
    labels: list[str],
    sizes: list[float | None],
    seed: int = 0,
    n_boot: int = 1000,
) -> pd.DataFrame:
    """Each step up in size (runs sorted by parameters): larger minus smaller per metric.

    Only runs with a known size take part; equal sizes are no step. Differences are
    means over the held-out pairs both runs share, with 95% BCa intervals over them.
    """
    sized = sorted(
        ((s, lab, run) for s, lab, run in zip(sizes, labels, runs, strict=True) if s),
        key=lambda t: t[0],
    )
    rows = []
    for step, ((s_small, small, r_small), (s_large, large, r_large)) in enumerate(
        zip(sized, sized[1:])
    ):
        if s_small == s_large:
            continue
        both = heldout_scores(r_small).merge(
            heldout_scores(r_large), on=["key_a", "key_b"], suffixes=("_s", "_l")
        )
        for m_i, metric in enumerate(TREND_METRICS):
            diff = both[f"{metric}_l"].to_numpy(float) - both[f"{metric}_s"].to_numpy(float)
            ci = stats.mean_interval(diff, seed + 101 * step + m_i, 0.95, n_boot)
            rows.append(
                {
                    "smaller": small,
                    "larger": large,
                    "smaller_params": s_small,
                    "larger_params": s_large,
                    "metric": metric,
                    "n_heldout_shared": len(diff),
                    "smaller_value": float(both[f"{metric}_s"].mean()) if len(diff) else None,
                    "larger_value": float(both[f"{metric}_l"].mean()) if len(diff) else None,
                    "difference": ci["value"],
                    "ci_low": ci["ci_low"],
                    "ci_high": ci["ci_high"],
                }
            )
    return pd.DataFrame(rows, columns=COLUMNS)
