"""Matplotlib figures for the run report.

Uses the object-oriented API (``matplotlib.figure.Figure``) only, so no pyplot
global state or GUI backend is touched; PNG output goes through Agg. Every
builder returns a ``Figure`` (or ``None`` when there is nothing to draw) and
``figure_to_svg`` turns it into an inline-ready ``<svg>`` string.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

STYLE: dict[str, object] = {
    "font.size": 9,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
    "axes.labelcolor": "#374151",
    "axes.edgecolor": "#9ca3af",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.axisbelow": True,
    "grid.color": "#e5e7eb",
    "grid.linewidth": 0.7,
    "xtick.color": "#4b5563",
    "ytick.color": "#374151",
    "legend.frameon": False,
    "svg.fonttype": "path",  # glyphs as paths: identical rendering on every machine
    "svg.hashsalt": "valuescope",  # deterministic ids
    "text.usetex": False,
}

WIDTH = 9.5  # inches
LABEL_CHARS = 70
ACCENT = "#2563eb"
MUTED = "#6b7280"
TAB60 = ["tab20", "tab20b", "tab20c"]


@contextmanager
def styled() -> Iterator[None]:
    """Apply the report style for figure creation and saving."""
    with mpl.rc_context(STYLE):
        yield


def short_label(text: object, width: int = LABEL_CHARS) -> str:
    """Collapse whitespace, truncate to ``width`` chars and escape mathtext ``$``."""
    s = " ".join(str(text).split())
    if len(s) > width:
        s = s[: width - 1].rstrip() + "…"
    return s.replace("$", r"\$")


def category_colors(categories: Iterable[str]) -> dict[str, tuple[float, ...]]:
    """Distinct colour per category: tab10, tab20, then tab20+tab20b+tab20c (cycling)."""
    cats = list(dict.fromkeys(categories))
    names = ["tab10"] if len(cats) <= 10 else ["tab20"] if len(cats) <= 20 else TAB60
    palette = [c for name in names for c in mpl.colormaps[name].colors]
    return {c: tuple(palette[i % len(palette)]) for i, c in enumerate(cats)}


def _present(colors: dict[str, tuple[float, ...]], df: pd.DataFrame) -> dict:
    """The subset of ``colors`` whose category occurs in ``df``."""
    seen = set(df["category"])
    return {c: col for c, col in colors.items() if c in seen}


def _legend_layout(labels: list[str], width: float) -> tuple[int, int]:
    """Columns and rows for a legend of ``labels`` across ``width`` inches."""
    longest = max((len(x) for x in labels), default=1)
    ncols = max(1, min(len(labels), int(width * 72 // (longest * 5.6 + 28))))
    return ncols, -(-len(labels) // ncols)


def _legend_height(colors: dict[str, tuple[float, ...]], width: float = WIDTH) -> float:
    """Extra figure height (inches) the category legend needs."""
    return 0.18 * _legend_layout([short_label(c, 32) for c in colors], width)[1] + 0.1


def _legend(fig: Figure, colors: dict[str, tuple[float, ...]]) -> None:
    """Category legend above the axes, wrapped to fit the figure width."""
    labels = [short_label(c, 32) for c in colors]
    ncols, _ = _legend_layout(labels, fig.get_figwidth())
    handles = [
        Line2D([], [], marker="o", ls="", color=col, markersize=6) for col in colors.values()
    ]
    fig.legend(handles, labels, loc="outside upper center", ncols=ncols, fontsize=8.5)


def utility_chart(
    util: pd.DataFrame, colors: dict[str, tuple[float, ...]], max_rows: int = 60, k: int = 30
) -> Figure | None:
    """Outcomes sorted by mean with CI bars; top/bottom ``k`` if more than ``max_rows``."""
    df = util.dropna(subset=["mean"]).sort_values("mean", ascending=False)
    if df.empty:
        return None
    df = df.assign(rank=np.arange(1, len(df) + 1))
    if len(df) > max_rows:
        panels = [(f"Top {k}", df.head(k)), (f"Bottom {k}", df.tail(k))]
    else:
        panels = [("", df)]
    n_rows = sum(len(p) for _, p in panels)
    colors = _present(colors, df)
    height = 1.2 + 0.2 * n_rows + 0.45 * len(panels) + _legend_height(colors)
    with styled():
        fig = Figure(figsize=(WIDTH, height), layout="constrained")
        axes = fig.subplots(
            len(panels),
            1,
            sharex=True,
            squeeze=False,
            gridspec_kw={"height_ratios": [len(p) for _, p in panels]},
        )[:, 0]
        for ax, (title, part) in zip(axes, panels, strict=True):
            y = np.arange(len(part))
            ci = part[["ci_low", "ci_high"]].notna().all(axis=1).to_numpy()
            ax.hlines(y[ci], part["ci_low"][ci], part["ci_high"][ci], color="#9ca3af", lw=1.4)
            ax.scatter(part["mean"], y, s=26, zorder=3, c=[colors[c] for c in part["category"]])
            labels = [
                f"{r}. {short_label(t)}" for r, t in zip(part["rank"], part["outcome"], strict=True)
            ]
            ax.set_yticks(y, labels, fontsize=8)
            ax.set_ylim(len(part) - 0.5, -0.5)
            ax.axvline(0, color="#9ca3af", lw=0.8, zorder=1)
            ax.grid(axis="y", visible=False)
            if title:
                ax.set_title(title)
        any_ci = bool(df[["ci_low", "ci_high"]].notna().all(axis=1).any())
        axes[-1].set_xlabel(
            "utility (standardised mean" + ("; bars = 95% interval)" if any_ci else ")")
        )
        _legend(fig, colors)
    return fig


def ranking_dotplot(util: pd.DataFrame, colors: dict[str, tuple[float, ...]]) -> Figure | None:
    """Compact rank-vs-utility dot plot of every outcome, coloured by category."""
    df = util.dropna(subset=["mean"]).sort_values("mean", ascending=False)
    if df.empty:
        return None
    x = np.arange(1, len(df) + 1)
    colors = _present(colors, df)
    with styled():
        fig = Figure(figsize=(WIDTH, 3.4 + _legend_height(colors)), layout="constrained")
        ax = fig.add_subplot()
        ci = df[["ci_low", "ci_high"]].notna().all(axis=1).to_numpy()
        ax.vlines(x[ci], df["ci_low"][ci], df["ci_high"][ci], color="#d1d5db", lw=0.8)
        ax.scatter(x, df["mean"], s=12, zorder=3, c=[colors[c] for c in df["category"]])
        ax.axhline(0, color="#9ca3af", lw=0.8, zorder=1)
        ax.set_xlim(0, len(df) + 1)
        ax.set_xlabel("rank (1 = most preferred)")
        ax.set_ylabel("utility")
        _legend(fig, colors)
    return fig


def category_chart(util: pd.DataFrame, colors: dict[str, tuple[float, ...]]) -> Figure | None:
    """Per-category strip plot with IQR bar and mean marker, sorted by category mean."""
    df = util.dropna(subset=["mean"])
    if df.empty:
        return None
    groups = sorted(df.groupby("category")["mean"], key=lambda g: -g[1].mean())
    rng = np.random.default_rng(0)
    with styled():
        fig = Figure(figsize=(WIDTH, 1.2 + 0.42 * len(groups)), layout="constrained")
        ax = fig.add_subplot()
        for i, (cat, values) in enumerate(groups):
            v = values.to_numpy()
            q1, q3 = np.percentile(v, [25, 75])
            ax.hlines(i, v.min(), v.max(), color="#d1d5db", lw=1)
            ax.hlines(i, q1, q3, color=colors[cat], lw=7, alpha=0.35)
            jitter = rng.uniform(-0.17, 0.17, len(v))
            ax.scatter(v, i + jitter, s=14, color=colors[cat], alpha=0.85, zorder=3, lw=0)
            ax.scatter(
                [v.mean()],
                [i],
                marker="D",
                s=46,
                color="white",
                edgecolor="#111827",
                zorder=4,
                lw=1.2,
            )
        labels = [f"{short_label(c, 40)} (n={len(v)})" for c, v in groups]
        ax.set_yticks(np.arange(len(groups)), labels)
        ax.set_ylim(len(groups) - 0.5, -0.5)
        ax.axvline(0, color="#9ca3af", lw=0.8, zorder=1)
        ax.grid(axis="y", visible=False)
        ax.set_xlabel("utility (◆ = category mean, band = interquartile range, line = range)")
    return fig


def calibration_bins(p: np.ndarray, q: np.ndarray, n_bins: int = 10) -> pd.DataFrame:
    """Bin predicted ``q`` into equal-width bins.

    Returns one row per non-empty bin: ``left``, ``width``, ``q_mean``, ``p_mean``, ``count``.
    """
    idx = np.clip((np.asarray(q) * n_bins).astype(int), 0, n_bins - 1)
    df = pd.DataFrame({"bin": idx, "p": p, "q": q})
    out = df.groupby("bin").agg(q_mean=("q", "mean"), p_mean=("p", "mean"), count=("p", "size"))
    out.insert(0, "left", out.index / n_bins)
    out.insert(1, "width", 1 / n_bins)
    return out.reset_index(drop=True)


def calibration_chart(bins: pd.DataFrame, title: str) -> Figure | None:
    """Reliability diagram: mean observed p vs mean predicted q, plus a count histogram."""
    if bins.empty:
        return None
    with styled():
        fig = Figure(figsize=(6.2, 6.0), layout="constrained")
        ax, hist = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [4, 1]})
        ax.plot([0, 1], [0, 1], ls="--", color="#9ca3af", lw=1, label="perfect calibration")
        sizes = 30 + 220 * bins["count"] / bins["count"].max()
        ax.plot(bins["q_mean"], bins["p_mean"], color=ACCENT, lw=1.2, zorder=2)
        ax.scatter(
            bins["q_mean"],
            bins["p_mean"],
            s=sizes,
            color=ACCENT,
            zorder=3,
            edgecolor="white",
            label="binned pairs (size = count)",
        )
        ax.set(
            xlim=(-0.03, 1.03), ylim=(-0.03, 1.03), ylabel="observed P(a preferred)", title=title
        )
        ax.legend(loc="upper left", fontsize=8)
        hist.bar(
            bins["left"], bins["count"], width=bins["width"] * 0.9, align="edge", color="#93c5fd"
        )
        hist.set(xlabel="predicted P(a preferred) by the fitted model", ylabel="pairs")
        hist.grid(axis="x", visible=False)
    return fig


def truth_chart(
    merged: pd.DataFrame, colors: dict[str, tuple[float, ...]], spearman: float | None
) -> Figure | None:
    """Scatter of fitted vs true mean utility with a least-squares line."""
    df = merged.dropna(subset=["mean", "true_mean"])
    if df.empty:
        return None
    colors = _present(colors, df)
    legend = len(colors) <= 10  # beyond that a legend would dwarf the scatter
    with styled():
        fig = Figure(
            figsize=(6.4, 5.4 + (_legend_height(colors, 6.4) if legend else 0)),
            layout="constrained",
        )
        ax = fig.add_subplot()
        ax.scatter(
            df["true_mean"],
            df["mean"],
            s=20,
            zorder=3,
            c=[colors.get(c, ACCENT) for c in df["category"]],
        )
        if len(df) > 1 and df["true_mean"].std() > 0:
            slope, icept = np.polyfit(df["true_mean"], df["mean"], 1)
            xs = np.linspace(df["true_mean"].min(), df["true_mean"].max(), 2)
            ax.plot(xs, slope * xs + icept, color=MUTED, lw=1, ls="--", zorder=2)
        rho = "—" if spearman is None else f"{spearman:.3f}"
        ax.set(
            title=f"Fitted vs true utility (Spearman ρ = {rho})",
            xlabel="true mean utility",
            ylabel="fitted mean utility (standardised)",
        )
        if legend:
            _legend(fig, colors)
    return fig


_DROP = re.compile(r"<metadata>.*?</metadata>|<!--.*?-->", re.S)
_IDS = re.compile(r'(\bid="|href="#|url\(#)')


def figure_to_svg(fig: Figure, prefix: str) -> str:
    """Serialise ``fig`` to an inline ``<svg>`` string with ids namespaced by ``prefix``.

    The XML prolog, metadata and comments (which would repeat label text) are
    removed; ids are prefixed so several SVGs can share one HTML document.
    """
    buf = io.StringIO()
    with styled():
        fig.savefig(buf, format="svg", metadata={"Date": None}, facecolor="white")
    return inline_svg(buf.getvalue(), prefix)


def inline_svg(svg: str, prefix: str) -> str:
    """An SVG document as an inline ``<svg>`` element with ids namespaced by ``prefix``."""
    svg = _DROP.sub("", svg[svg.index("<svg") :])
    return _IDS.sub(lambda m: m.group(1) + prefix, svg).strip()


def figure_to_png(fig: Figure, path: str, dpi: int = 110) -> None:
    """Write ``fig`` as a PNG (Agg) — handy for previews and debugging."""
    with styled():
        fig.savefig(path, format="png", dpi=dpi, facecolor="white")
