"""Render a run directory into a single self-contained, offline ``report.html``."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd

from valuescope.atomic import write_text
from valuescope.errors import ValuescopeError
from valuescope.report import plots, sections
from valuescope.runcore import reader
from valuescope.stats import correlation

DASH = "—"
NUMERIC = ["mean", "sigma", "ci_low", "ci_high"]

# (key, label, direction hint, description shown on hover)
COHERENCE_ROWS: list[tuple[str, str, str, str]] = [
    ("heldout_accuracy", "Held-out accuracy", "↑",
     "Share of the uniform held-out pairs whose majority answer the fitted utilities "
     "predict (ties count 1/2); a coin scores 0.5."),
    ("heldout_log_loss", "Held-out log-loss", "↓",
     "Cross-entropy (nats) of the observed held-out preferences under the fitted model; "
     "predicting 1/2 everywhere scores ln 2 = 0.693."),
    ("heldout_kl", "Held-out KL", "↓",
     "KL divergence from observed to predicted held-out preference probabilities."),
    ("completeness", "Completeness", "↑",
     "Average confidence max(p, 1 − p) over the uniform held-out pairs; 1 = every answer "
     "decisive, 0.5 = a coin in logprob mode."),
    ("cycle_prob", "P(cycle)", "↓",
     "Probability that the answers on a uniform held-out triad form a cycle "
     "(a > b > c > a): xyz + (1−x)(1−y)(1−z) for P(a>b)=x, P(b>c)=y, P(c>a)=z, "
     "averaged over triads; a coin gives 0.25."),
    ("cycle_log_prob", "log10 P(cycle)", "↓",
     "log10 of P(cycle); a coin gives log10 0.25 = −0.602. The paper's −0.484 for a "
     "random agent matches no triad definition, so do not compare with its axis."),
    ("position_bias", "Position bias", "0.5 = none",
     "Share of answers that chose the first-listed option; 0.5 means no position bias."),
    ("refusal_rate", "Refusal rate", "↓",
     "Share of answers that were refusals or could not be parsed."),
]  # fmt: skip


class ReportError(ValuescopeError, FileNotFoundError):
    """A directory holds nothing a report can be built from."""


@dataclass
class RunData:
    """Everything read from a run directory."""

    name: str
    utilities: pd.DataFrame
    pairs: pd.DataFrame | None
    truth: pd.DataFrame | None
    metrics: dict[str, Any]


def num(x: Any) -> float | None:
    """``x`` as a finite float, else ``None``."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def fmt(x: Any, digits: int = 3) -> str:
    """Fixed-point number or an em dash."""
    v = num(x)
    return DASH if v is None else f"{v:.{digits}f}"


def fmt_int(x: Any) -> str:
    """Integer with thousands separators or an em dash."""
    v = num(x)
    return DASH if v is None else f"{round(v):,}"


def fmt_duration(x: Any) -> str:
    """Seconds as ``12.3 s``, ``4 min 05 s`` or ``1 h 02 min``."""
    v = num(x)
    if v is None:
        return DASH
    if v < 60:
        return f"{v:.1f} s"
    m, s = divmod(round(v), 60)
    return f"{m} min {s:02d} s" if m < 60 else f"{m // 60} h {m % 60:02d} min"


def fmt_interval(lo: Any, hi: Any, digits: int = 3) -> str:
    """``[lo, hi]`` or an em dash when either end is missing."""
    a, b = num(lo), num(hi)
    return DASH if a is None or b is None else f"[{a:.{digits}f}, {b:.{digits}f}]"


def text(x: Any) -> str:
    """Display string for a scalar metadata value."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)) or x == "":
        return DASH
    return str(x)


def _sub(metrics: dict[str, Any], key: str) -> dict[str, Any]:
    value = metrics.get(key)
    return value if isinstance(value, dict) else {}


def _read_csv(path: Path, str_cols: list[str], num_cols: list[str]) -> pd.DataFrame | None:
    """A CSV of the run through the run reader (None when absent), its errors as ReportError."""
    try:
        return reader.read_table(path, text=str_cols, numbers=num_cols, optional=True)
    except ValuescopeError as exc:
        raise ReportError(str(exc)) from None


def load_run(run_dir: Path) -> RunData:
    """Read utilities, pairs, truth and metrics from ``run_dir`` (only utilities required)."""
    util = _read_csv(run_dir / "utilities.csv", ["id", "outcome", "category"], NUMERIC)
    if util is None:
        raise ReportError(f"{run_dir}: no utilities.csv (is this a run directory?)")
    util["id"] = util["id"] if "id" in util else [str(i) for i in range(len(util))]
    util["outcome"] = util["outcome"] if "outcome" in util else util["id"]
    util["category"] = util.get("category", pd.Series("", index=util.index)).fillna("")
    util.loc[util["category"].str.strip() == "", "category"] = "uncategorised"
    pairs = _read_csv(
        run_dir / "pairs.csv", ["a", "b", "split"], ["p", "q", "n_answers", "n_refused"]
    )
    truth = _read_csv(run_dir / "truth.csv", ["id"], ["mean", "sigma"])
    metrics_path = run_dir / reader.METRICS
    metrics = (
        reader.read_json(metrics_path) if metrics_path.is_file() else {}
    )  # one line if corrupt
    return RunData(
        run_dir.resolve().name, util, pairs, truth, metrics if isinstance(metrics, dict) else {}
    )


def coherence_table(metrics: dict[str, Any]) -> tuple[list[dict[str, str]], bool]:
    """Rows for the coherence panel and whether the Bradley-Terry column is shown."""
    rand, bt, intervals = (
        _sub(metrics, k) for k in ("baseline_random", "bradley_terry", "intervals")
    )
    show_bt = any(num(v) is not None for v in bt.values())
    rows = []
    for key, label, hint, desc in COHERENCE_ROWS:
        rand_v = rand.get(key)
        if key == "completeness" and num(rand_v) is None:
            rand_v = metrics.get("completeness_random_expected")
        iv = intervals.get(key)
        pair = iv if isinstance(iv, list | tuple) and len(iv) == 2 else (None, None)
        interval = fmt_interval(*pair)
        defined = _sub(_sub(metrics, "definitions"), key)
        rows.append(
            {
                "label": label,
                "hint": hint,
                "desc": desc,
                "on": _computed_on(defined),
                "value": fmt(metrics.get(key)),
                "interval": "" if interval == DASH else interval,
                "random": fmt(rand_v),
                "bt": fmt(bt.get(key)),
            }
        )
    return rows, show_bt


def _computed_on(defined: dict[str, Any]) -> str:
    """'uniform held-out triads (n = 333)' from a metrics['definitions'] entry."""
    on = defined.get("computed_on")
    if not on:
        return ""
    n = num(defined.get("n"))
    return f"{on} (n = {round(n):,})" if n is not None else str(on)


def cycle_note(metrics: dict[str, Any]) -> str:
    """What the cycle figure rests on, and the design-bound figure beside it."""
    if num(metrics.get("cycle_prob")) is None:
        return ""
    note = (
        f"P(cycle) {fmt(metrics.get('cycle_prob'))} over {fmt_int(metrics.get('n_triads'))} "
        "uniform held-out triads (a coin: 0.250)."
    )
    graph = num(_sub(metrics, "diagnostics").get("cycle_prob_graph_triangles"))
    if graph is not None:
        note += (
            f" Over the triangles of the asked pairs it is {graph:.3f}, a diagnostic only: "
            "an adaptive design asks near-ties, which inflates it."
        )
    return note


def coherence_reading(metrics: dict[str, Any]) -> str:
    """Plain-language reading of held-out accuracy against the random agent."""
    acc = num(metrics.get("heldout_accuracy"))
    if acc is None:
        return "No held-out accuracy was recorded, so coherence cannot be compared with chance."
    rand = num(_sub(metrics, "baseline_random").get("heldout_accuracy"))
    who = "for a random agent" if rand is not None else "expected by chance"
    rand = 0.5 if rand is None else rand
    gap = acc - rand
    if gap >= 0.25:
        verdict = "preferences are far more coherent than chance"
    elif gap >= 0.10:
        verdict = "preferences are clearly more coherent than chance"
    elif gap >= 0.03:
        verdict = "preferences are only slightly more coherent than chance"
    elif gap > -0.03:
        verdict = "preferences are no more coherent than chance"
    else:
        verdict = "the fit predicts worse than chance — check the run"
    sentence = f"Held-out accuracy {acc:.2f} vs {rand:.2f} {who}: {verdict}."
    cycle = num(metrics.get("cycle_prob"))
    if cycle is not None:
        sentence += (
            f" On uniform triads the answers cycle with probability {cycle:.3f} "
            "(a coin: 0.250; decisive transitive answers: 0)."
        )
    refusal = num(metrics.get("refusal_rate"))
    if refusal is not None and refusal >= 0.1:
        sentence += f" Note that {refusal:.0%} of answers were refusals."
    return sentence


def header_items(data: RunData) -> list[tuple[str, str]]:
    """Key facts for the report header."""
    m = data.metrics
    fit = _sub(m, "fit")
    n_pairs = m.get("n_pairs")
    if num(n_pairs) is None and data.pairs is not None:
        n_pairs = len(data.pairs)
    n_outcomes = m.get("n_outcomes")
    if num(n_outcomes) is None:
        n_outcomes = len(data.utilities)
    heldout = m.get("n_heldout_pairs")
    new = m.get("n_queries_new")
    fit_bits = [text(fit.get("method"))]
    if fit.get("converged") is not None:
        fit_bits.append("converged" if fit.get("converged") else "NOT converged")
    if num(fit.get("n_iter")) is not None:
        fit_bits.append(f"{fmt_int(fit.get('n_iter'))} iterations")
    if num(fit.get("seconds")) is not None:
        fit_bits.append(fmt_duration(fit.get("seconds")))
    return [
        ("Model", text(m.get("model"))),
        ("Outcome set", text(m.get("outcomes_set"))),
        ("Mode", text(m.get("mode"))),
        ("Samples", fmt_int(m.get("samples"))),
        ("Design", text(m.get("design"))),
        ("Seed", text(m.get("seed"))),
        ("Outcomes", fmt_int(n_outcomes)),
        (
            "Pairs",
            fmt_int(n_pairs)
            + (f" ({fmt_int(heldout)} held out)" if num(heldout) is not None else ""),
        ),
        (
            "Queries",
            fmt_int(m.get("n_queries"))
            + (f" ({fmt_int(new)} new)" if num(new) is not None else ""),
        ),
        ("Refusal policy", text(m.get("refusal_policy"))),
        ("Fit", " · ".join(b for b in fit_bits if b != DASH) or DASH),
        ("Elapsed", fmt_duration(m.get("elapsed_seconds"))),
    ] + usage_items(m)


def usage_items(m: dict[str, Any]) -> list[tuple[str, str]]:
    """Tokens and cost, where the backend reported them (none for synthetic agents)."""
    items = []
    t_in, t_out = num(m.get("tokens_in")) or 0, num(m.get("tokens_out")) or 0
    if t_in + t_out > 0:
        items.append(("Tokens", f"{fmt_int(t_in)} in · {fmt_int(t_out)} out"))
    cost = num(m.get("cost_usd"))
    if cost is not None:
        items.append(("Cost", f"${cost:,.4f}"))
    return items


def outcome_rows(util: pd.DataFrame) -> list[dict[str, str]]:
    """Table rows sorted by mean utility (missing means last, unranked)."""
    df = util.sort_values("mean", ascending=False, na_position="last")
    return [
        {
            "rank": str(i) if num(r["mean"]) is not None else DASH,
            "id": str(r["id"]),
            "outcome": str(r["outcome"]),
            "category": str(r["category"]),
            "mean": fmt(r["mean"]),
            "sigma": fmt(r["sigma"]),
            "interval": fmt_interval(r["ci_low"], r["ci_high"]),
        }
        for i, (_, r) in enumerate(df.iterrows(), start=1)
    ]


def _calibration(pairs: pd.DataFrame | None) -> tuple[Any, str]:
    """Calibration figure (held-out pairs, or all pairs if no split) and a caption."""
    none = "No pairs with observed and predicted probabilities were recorded."
    if pairs is None or "p" not in pairs or "q" not in pairs:
        return None, none
    ok = pairs.dropna(subset=["p", "q"])
    held = ok[ok["split"] == "heldout"] if "split" in ok else ok.iloc[:0]
    which, title = "held-out", "Held-out pairs"
    if held.empty:
        held, which, title = ok, "all (no held-out split recorded)", "All pairs"
    if held.empty:
        return None, none
    bins = plots.calibration_bins(held["p"].to_numpy(), held["q"].to_numpy())
    ece = float(np.sum(bins["count"] * (bins["p_mean"] - bins["q_mean"]).abs()) / len(held))
    caption = (
        f"{len(held):,} {which} pairs in {len(bins)} bins; count-weighted mean "
        f"|observed − predicted| = {ece:.3f}."
    )
    return plots.calibration_chart(bins, title), caption


def _truth(data: RunData) -> tuple[pd.DataFrame | None, float | None]:
    """Fitted utilities joined with true ones, and the Spearman correlation."""
    if data.truth is None or "id" not in data.truth:
        return None, None
    true = data.truth[["id", "mean"]].rename(columns={"mean": "true_mean"})
    merged = data.utilities.merge(true, on="id", how="inner")
    rho = num(_sub(data.metrics, "truth").get("spearman"))
    ok = merged.dropna(subset=["mean", "true_mean"])
    if rho is None and len(ok) > 2:
        rho = num(correlation(ok["mean"], ok["true_mean"], "spearman"))
    return merged, rho


def category_rows(metrics: dict[str, Any]) -> list[dict[str, str]]:
    """Per-category utilities and coherence, highest mean utility first."""
    cats = _sub(metrics, "categories")
    rows = []
    for name, c in sorted(cats.items(), key=lambda kv: -(num(kv[1].get("mean_utility")) or 0)):
        interval = c.get("mean_utility_interval") or [None, None]
        rows.append(
            {
                "name": text(name),
                "n": fmt_int(c.get("n_outcomes")),
                "mean": fmt(c.get("mean_utility"), 2),
                "interval": fmt_interval(interval[0], interval[1], 2),
                "accuracy": fmt(c.get("heldout_accuracy")),
                "completeness": fmt(c.get("completeness")),
                "refusals": fmt(c.get("refusal_rate")),
            }
        )
    return rows


REFUSAL_POLICY_TEXT = {
    "indifference": "refusals and unreadable answers entered the fit as indifference (1/2)",
    "drop": "refusals and unreadable answers were left out of the fit",
    "separate": "refusals were left out of the fit and are reported as their own channel "
    "(per outcome in utilities.csv, per category below)",
}


def refusal_rows(metrics: dict[str, Any]) -> list[dict[str, str]]:
    """How the utilities and fit quality change under each refusal policy."""
    rows = []
    for policy, entry in _sub(metrics, "refusal_policies").items():
        rows.append(
            {
                "policy": text(policy),
                "spearman": fmt(entry.get("spearman_with_reported")),
                "accuracy": fmt(entry.get("heldout_accuracy")),
                "log_loss": fmt(entry.get("heldout_log_loss")),
            }
        )
    return rows


def _svg(fig: Any, prefix: str) -> str | None:
    return None if fig is None else plots.figure_to_svg(fig, prefix)


def build_context(data: RunData) -> dict[str, Any]:
    """All values the template needs, pre-formatted."""
    util, m = data.utilities, data.metrics
    order = util.groupby("category")["mean"].mean().sort_values(ascending=False).index
    colors = plots.category_colors(order)
    rows, show_bt = coherence_table(m)
    calib_fig, calib_caption = _calibration(data.pairs)
    merged, rho = _truth(data)
    has_ci = bool(util[["ci_low", "ci_high"]].notna().all(axis=1).any())
    notes = []
    if not has_ci:
        notes.append("No bootstrap intervals: the utility chart shows point estimates only.")
    if _sub(m, "fit").get("converged") is False:
        notes.append("The utility fit did not converge; treat the numbers with caution.")
    sigma_ident = _sub(m, "sigma_identified")
    if sigma_ident.get("identified") is False:
        notes.append(
            "The sigmas are poorly identified: their split-half reliability is "
            f"{_fmt_num(sigma_ident.get('split_half_reliability'))} (below "
            f"{_fmt_num(sigma_ident.get('threshold'))}), so a rerun would reorder them; "
            "read the sigma column with care (more pairs or more samples help)."
        )
    truth_extra = _sub(m, "truth")
    return {
        "has_run": True,
        "title": text(m.get("model")) if m.get("model") else data.name,
        "run_name": data.name,
        "header": header_items(data),
        "notes": notes,
        "coherence_rows": rows,
        "show_bt": show_bt,
        "reading": coherence_reading(m),
        "cycle_note": cycle_note(m),
        "n_outcomes": len(util),
        "utility_svg": _svg(plots.utility_chart(util, colors), "u-"),
        "ranking_svg": _svg(plots.ranking_dotplot(util, colors), "r-") if len(util) > 60 else None,
        "category_svg": _svg(plots.category_chart(util, colors), "c-"),
        "calibration_svg": _svg(calib_fig, "k-"),
        "calibration_caption": calib_caption,
        "truth_svg": None if merged is None else _svg(plots.truth_chart(merged, colors, rho), "t-"),
        "truth_caption": (
            f"Spearman ρ = {fmt(rho)}, Pearson r = {fmt(truth_extra.get('pearson'))}"
            f" over {len(merged):,} outcomes."
            if merged is not None
            else ""
        ),
        "outcomes": outcome_rows(util),
        "category_rows": category_rows(m),
        "refusal_policy": text(m.get("refusal_policy")),
        "refusal_policy_text": REFUSAL_POLICY_TEXT.get(str(m.get("refusal_policy")), ""),
        "refusal_rows": refusal_rows(m),
        "refusal_rate": fmt(m.get("refusal_rate")),
        "position_bias_reading": sections.position_bias_reading(m),
        "gaps": sections.largest_gaps(util),
        "extremes": sections.category_extremes(util),
        "uncertain": sections.widest_intervals(util),
        "refused": sections.most_refused(util),
        "provenance": sections.provenance_rows(m),
        "version": _version(),
    }


def analyses_context(directory: Path) -> dict[str, Any]:
    """Template values for a directory that holds analysis results but no run."""
    found = sections.load_experiments(directory)
    models = sorted({x["model"] for x in found if x["model"]})
    return {
        "has_run": False,
        "title": ", ".join(models) if models else directory.resolve().name,
        "run_name": directory.resolve().name,
        "header": [
            ("Model", ", ".join(models) or DASH),
            ("Analyses", str(len(found))),
            ("Directory", directory.resolve().name),
        ],
        "notes": [],
        "version": _version(),
    }


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("valuescope")
    except Exception:  # metadata is cosmetic; never fail the report over it
        return ""


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("valuescope.report", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )


def build_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write a self-contained HTML report for ``run_dir``; return its path.

    The page shows the run (from ``utilities.csv`` and friends) and one section per
    analysis result (``*.json`` with an ``experiment`` key) in the directory; a
    directory with analysis results only gets a page of those. ``out`` defaults to
    ``run_dir/report.html``; an existing directory gets ``report.html`` inside it.
    """
    run = Path(run_dir)
    if not run.is_dir():
        raise ReportError(f"{run}: no such directory")
    analyses = sections.load_experiments(run)
    if (run / "utilities.csv").is_file() or not analyses:
        context = build_context(load_run(run))
    else:
        context = analyses_context(run)
    context["analyses"] = analyses
    html = _env().get_template("run.html.j2").render(**context)
    path = Path(out) if out is not None else run / "report.html"
    if path.is_dir():
        path = path / "report.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, html)
    return path


def _fmt_num(value: object) -> str:
    """Two decimals, or a dash for a missing number."""
    return f"{value:.2f}" if isinstance(value, int | float) else DASH
