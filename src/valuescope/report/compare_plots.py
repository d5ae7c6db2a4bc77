"""Figures for the multi-run comparison, in the style of ``plots``."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, NullFormatter

from valuescope.report.plots import ACCENT, MUTED, WIDTH, short_label, styled

RUN_COLORS = ["#2563eb", "#ea580c", "#16a34a", "#9333ea", "#dc2626", "#0891b2", "#ca8a04",
              "#db2777", "#4b5563", "#65a30d"]  # fmt: skip


def run_colors(labels: list[str]) -> dict[str, str]:
    """One colour per run, stable across figures."""
    return {lab: RUN_COLORS[i % len(RUN_COLORS)] for i, lab in enumerate(labels)}


def heatmap(matrix: pd.DataFrame, title: str) -> Figure:
    """Annotated similarity matrix on a fixed [-1, 1] diverging scale."""
    labels = [short_label(x, 36) for x in matrix.index]
    n = len(labels)
    cell = 0.8 if n <= 6 else max(0.35, 5.0 / n)
    label_in = 0.07 * max(len(x) for x in labels) + 0.3  # tick labels at 9 pt
    width = min(WIDTH, label_in + cell * n + 1.5)
    height = 0.7 + cell * n + 0.6 * label_in  # rotated x labels below
    with styled():
        fig = Figure(figsize=(width, height), layout="constrained")
        ax = fig.add_subplot()
        values = matrix.to_numpy(float)
        image = ax.imshow(values, cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
        for i in range(n):
            for j in range(n):
                v = values[i, j]
                ax.text(
                    j,
                    i,
                    "—" if not np.isfinite(v) else f"{v:.2f}",
                    ha="center",
                    va="center",
                    fontsize=10 if n <= 6 else 8,
                    color="white" if np.isfinite(v) and abs(v) > 0.6 else "#111827",
                )
        ax.set_xticks(range(n), labels, rotation=30, ha="right")
        ax.set_yticks(range(n), labels)
        ax.grid(False)
        ax.spines[:].set_visible(False)
        ax.set_title(title)
        fig.colorbar(image, ax=ax, shrink=0.8, label="cosine similarity")
    return fig


def coherence_chart(metrics: pd.DataFrame) -> Figure | None:
    """Held-out accuracy (with 95% intervals) against model size, or per run as bars.

    The scatter is used only when every run has a known, distinct-enough size.
    """
    df = metrics.dropna(subset=["heldout_accuracy"])
    if df.empty:
        return None
    sizes = df["n_params"]
    by_size = bool(sizes.notna().all() and sizes.nunique() > 1)
    lo = (df["heldout_accuracy"] - df["heldout_accuracy_ci_low"]).clip(lower=0)
    hi = (df["heldout_accuracy_ci_high"] - df["heldout_accuracy"]).clip(lower=0)
    err = np.vstack([lo.fillna(0).to_numpy(), hi.fillna(0).to_numpy()])
    rand = df["random_heldout_accuracy"].dropna()
    with styled():
        if by_size:
            fig = Figure(figsize=(6.4, 4.4), layout="constrained")
            ax = fig.add_subplot()
            x = sizes.to_numpy(float)
            ax.errorbar(x, df["heldout_accuracy"], yerr=err, fmt="o", color=ACCENT, capsize=3)
            ax.set_xscale("log")
            lo_x, hi_x = np.log10(x.min()), np.log10(x.max())
            ax.set_xlim(10 ** (lo_x - 0.25), 10 ** (hi_x + 0.25))
            mid = (lo_x + hi_x) / 2
            for xi, yi, lab in zip(x, df["heldout_accuracy"], df["run"], strict=True):
                right = np.log10(xi) > mid  # label towards the centre, never off the figure
                ax.annotate(short_label(lab, 28), (xi, yi), xytext=(-6 if right else 6, 5),
                            textcoords="offset points", fontsize=8,
                            ha="right" if right else "left")  # fmt: skip
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: format_size(v)))
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xlabel("model size (parameters, log scale)")
            ax.set_title("Coherence vs model size")
        else:
            n = len(df)
            fig = Figure(figsize=(WIDTH, 1.3 + 0.45 * n), layout="constrained")
            ax = fig.add_subplot()
            y = np.arange(n)
            ax.barh(y, df["heldout_accuracy"], color="#93c5fd", height=0.6)
            ax.errorbar(df["heldout_accuracy"], y, xerr=err, fmt="none", ecolor="#1e3a8a",
                        capsize=3)  # fmt: skip
            ax.set_yticks(y, [short_label(x, 48) for x in df["run"]])
            ax.set_ylim(n - 0.5, -0.6)
            ax.set_xlim(0, 1.0)
            ax.grid(axis="y", visible=False)
            ax.set_xlabel("held-out accuracy (bars = 95% interval)")
            ax.set_title("Coherence per run")
        if not rand.empty:
            level = float(rand.mean())
            line = ax.axhline if by_size else ax.axvline
            line(level, color=MUTED, ls="--", lw=1)
            handle = Line2D([], [], color=MUTED, ls="--", lw=1)
            ax.legend([handle], [f"random agent ({level:.2f})"], loc="lower right", fontsize=8)
        if by_size:
            ax.set_ylabel("held-out accuracy (bars = 95% interval)")
    return fig


def side_by_side(utilities: pd.DataFrame, labels: list[str], max_rows: int = 50) -> Figure | None:
    """Shared outcomes (rows, by average utility) with each run's utility as a coloured dot.

    Each run's utilities are z-scored over the shared outcomes first, so runs fitted on
    different outcome sets sit on one scale. More than ``max_rows`` outcomes: the top and
    bottom ``max_rows // 2`` by average.
    """
    df = utilities.dropna(subset=labels)
    if df.empty:
        return None
    z = pd.DataFrame({lab: _zscore(df[lab].to_numpy(float)) for lab in labels}, index=df.index)
    order = z.mean(axis=1).sort_values(ascending=False).index
    if len(order) > max_rows:
        k = max_rows // 2
        order = order[:k].append(order[-k:])
    colors = run_colors(labels)
    n = len(order)
    offsets = np.linspace(-0.22, 0.22, len(labels)) if len(labels) > 1 else [0.0]
    with styled():
        fig = Figure(figsize=(WIDTH, 1.6 + 0.24 * n), layout="constrained")
        ax = fig.add_subplot()
        y = np.arange(n)
        zz = z.loc[order]
        ax.hlines(y, zz.min(axis=1), zz.max(axis=1), color="#e5e7eb", lw=3, zorder=1)
        for lab, off in zip(labels, offsets, strict=True):
            ax.scatter(
                zz[lab], y + off, s=18, color=colors[lab], zorder=3, label=short_label(lab, 40)
            )
        ax.set_yticks(y, [short_label(t, 60) for t in df.loc[order, "outcome"]], fontsize=8)
        ax.set_ylim(n - 0.5, -0.5)
        if len(z) > max_rows:
            ax.axhline(max_rows // 2 - 0.5, color=MUTED, lw=0.8, ls=":")
        ax.axvline(0, color="#9ca3af", lw=0.8, zorder=1)
        ax.grid(axis="y", visible=False)
        ax.set_xlabel("utility (z-scored over the shared outcomes, per run)")
        fig.legend(loc="outside upper center", ncols=min(len(labels), 4), fontsize=8.5)
    return fig


def format_size(value: float) -> str:
    """Parameters as ``135M``, ``1.5B``."""
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if value >= scale:
            return f"{value / scale:.3g}{unit}"
    return f"{value:.0f}"


def _zscore(x: np.ndarray) -> np.ndarray:
    sd = x.std()
    return (x - x.mean()) / sd if sd > 0 else x - x.mean()
