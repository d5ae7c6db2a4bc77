"""Report sections beyond the core run panels: analysis results and surprising findings.

Analyses (``valuescope experiment NAME``) write ``DIR/NAME.json`` following the contract
in ``valuescope.experiments.base.write_result``; every such file becomes one generic
section: headline figures with intervals, the reading, its tables and its figures
(inlined, so the page stays self-contained).
"""

from __future__ import annotations

import base64
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import norm

from valuescope.report import plots
from valuescope.runcore import reader

DASH = "—"
MAX_TABLE_ROWS = 200
MAX_DETAIL_CHARS = 20_000
IMAGE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
}
_SCRIPT = re.compile(
    r"<script\b.*?</script\s*>|<foreignObject\b.*?</foreignObject\s*>", re.S | re.I
)
_ON_ATTR = re.compile(r"\son\w+\s*=\s*(\"[^\"]*\"|'[^']*')", re.I)
_EXTERNAL = re.compile(r"""(?:xlink:)?href\s*=\s*["'](?!#)[^"']*["']""", re.I)
CONTRACT_KEYS = {
    "experiment", "title", "summary", "model", "seed", "quick",
    "headline", "reading", "tables", "figures",
}  # fmt: skip


def cell(value: Any) -> str:
    """Display string for one table cell."""
    if value is None:
        return DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return DASH
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.3g}"
        return f"{value:.3f}"
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)[:200]
    return str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def headline_rows(headline: Any) -> list[dict[str, str]]:
    """Rows (label, value, interval) of an analysis's headline figures."""
    if not isinstance(headline, dict):
        return []
    rows = []
    for key, item in headline.items():
        entry = item if isinstance(item, dict) else {"value": item}
        lo, hi = entry.get("ci_low"), entry.get("ci_high")
        interval = f"[{cell(lo)}, {cell(hi)}]" if _is_number(lo) and _is_number(hi) else ""
        level = entry.get("level")
        if interval and _is_number(level):
            interval = f"{level:.0%} {interval}"
        rows.append(
            {
                "key": str(key),
                "label": str(entry.get("label") or key),
                "value": cell(entry.get("value")),
                "interval": interval,
            }
        )
    return rows


def table_block(name: str, rows: Any) -> dict[str, Any]:
    """A table from a list of row dicts: union of keys as columns, capped rows."""
    rows = [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []
    columns: list[str] = list(dict.fromkeys(k for r in rows for k in r))
    shown = rows[:MAX_TABLE_ROWS]
    numeric = {c: all(_is_number(r.get(c)) or r.get(c) is None for r in shown) for c in columns}
    cells = [[cell(r.get(c)) for c in columns] for r in shown]
    long = {c: any(len(row[i]) > 40 for row in cells) for i, c in enumerate(columns)}
    return {
        "name": name.replace("_", " "),
        "columns": [
            {"name": c.replace("_", " "), "num": numeric[c], "long": long[c]} for c in columns
        ],
        "rows": cells,
        "n_rows": len(rows),
        "truncated": len(rows) > len(shown),
    }


def clean_svg(svg: str) -> str:
    """Drop scripts, event handlers and external links from an SVG to be inlined."""
    svg = _SCRIPT.sub("", svg)
    svg = _ON_ATTR.sub("", svg)
    return _EXTERNAL.sub("", svg)


def figure_block(base: Path, name: Any, prefix: str) -> dict[str, str]:
    """One figure file inlined: ``name`` plus one of ``svg``, ``img`` (data URI), ``missing``."""
    block = {"name": str(name), "svg": "", "img": "", "missing": ""}
    return block | _figure(base, str(name), prefix)


def _figure(base: Path, label: str, prefix: str) -> dict[str, str]:
    root = base.resolve()
    path = (base / label).resolve()
    if not path.is_relative_to(root):
        return {"missing": "outside the result directory; not embedded"}
    if not path.is_file():
        return {"missing": "file not found"}
    suffix = path.suffix.lower()
    if suffix == ".svg":
        text = path.read_text(encoding="utf-8", errors="replace")
        if "<svg" not in text:
            return {"missing": "not an SVG file"}
        return {"svg": plots.inline_svg(clean_svg(text), prefix)}
    if suffix in IMAGE_TYPES:
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        return {"img": f"data:{IMAGE_TYPES[suffix]};base64,{data}"}
    return {"missing": f"unsupported figure type {suffix or '(none)'}"}


def load_experiments(directory: Path) -> list[dict[str, Any]]:
    """Every ``*.json`` in ``directory`` that holds an analysis result, sorted by file name."""
    found = reader.read_analyses(directory)
    return [experiment_section(directory, p, d, i) for i, (p, d) in enumerate(found)]


def experiment_section(base: Path, path: Path, data: dict[str, Any], index: int) -> dict[str, Any]:
    """Template values for one analysis result."""
    name = str(data.get("experiment") or path.stem)
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or f"analysis-{index}"
    tables = data.get("tables") if isinstance(data.get("tables"), dict) else {}
    figures = data.get("figures") if isinstance(data.get("figures"), list) else []
    detail = {k: v for k, v in data.items() if k not in CONTRACT_KEYS}
    detail_text = json.dumps(detail, indent=2, ensure_ascii=False, default=str) if detail else ""
    if len(detail_text) > MAX_DETAIL_CHARS:
        detail_text = detail_text[:MAX_DETAIL_CHARS] + f"\n… (truncated; see {path.name})"
    return {
        "id": f"x-{slug}",
        "name": name,
        "file": path.name,
        "title": str(data.get("title") or name),
        "summary": str(data.get("summary") or ""),
        "model": str(data.get("model") or ""),
        "quick": bool(data.get("quick")),
        "headline": headline_rows(data.get("headline")),
        "reading": str(data.get("reading") or ""),
        "tables": [table_block(str(k), v) for k, v in tables.items()],
        "figures": [
            figure_block(base, f, f"x{index}f{j}-") for j, f in enumerate(figures) if f is not None
        ],
        "detail": detail_text,
    }


def largest_gaps(util: pd.DataFrame, k: int = 5) -> list[dict[str, str]]:
    """The ``k`` largest utility drops between neighbours in the ranking.

    Each gap also reads as the probability that the upper outcome is preferred to the
    lower one, Phi(gap / sqrt(sigma_a^2 + sigma_b^2)), under the fitted model.
    """
    df = util.dropna(subset=["mean"]).sort_values("mean", ascending=False).reset_index(drop=True)
    if len(df) < 3:
        return []
    gaps = -np.diff(df["mean"].to_numpy())
    rows = []
    for i in np.argsort(-gaps, kind="stable")[:k]:
        a, b = df.iloc[i], df.iloc[i + 1]
        spread = math.hypot(float(a["sigma"]), float(b["sigma"])) if _finite(a, b) else None
        prob = float(norm.cdf(gaps[i] / spread)) if spread else None
        rows.append(
            {
                "rank": f"{i + 1} → {i + 2}",
                "upper": str(a["outcome"]),
                "lower": str(b["outcome"]),
                "gap": f"{gaps[i]:.3f}",
                "prob": DASH if prob is None else f"{prob:.2f}",
            }
        )
    return rows


def _finite(a: pd.Series, b: pd.Series) -> bool:
    return all(
        isinstance(x, int | float) and math.isfinite(x) and x > 0 for x in (a["sigma"], b["sigma"])
    )


def category_extremes(util: pd.DataFrame) -> list[dict[str, str]]:
    """Most and least preferred outcome of every category with at least two outcomes."""
    df = util.dropna(subset=["mean"])
    order = df.groupby("category")["mean"].mean().sort_values(ascending=False).index
    rows = []
    for cat in order:
        part = df[df["category"] == cat].sort_values("mean", ascending=False)
        if len(part) < 2:
            continue
        top, bottom = part.iloc[0], part.iloc[-1]
        rows.append(
            {
                "category": str(cat),
                "top": str(top["outcome"]),
                "top_mean": f"{top['mean']:.2f}",
                "bottom": str(bottom["outcome"]),
                "bottom_mean": f"{bottom['mean']:.2f}",
            }
        )
    return rows


def widest_intervals(util: pd.DataFrame, k: int = 5) -> list[dict[str, str]]:
    """Outcomes whose utility is least certain (widest bootstrap interval)."""
    df = util.dropna(subset=["mean", "ci_low", "ci_high"])
    if df.empty:
        return []
    df = df.assign(width=df["ci_high"] - df["ci_low"]).sort_values("width", ascending=False)
    return [
        {
            "outcome": str(r["outcome"]),
            "mean": f"{r['mean']:.2f}",
            "interval": f"[{r['ci_low']:.2f}, {r['ci_high']:.2f}]",
            "width": f"{r['width']:.2f}",
        }
        for _, r in df.head(k).iterrows()
    ]


def most_refused(util: pd.DataFrame, k: int = 5) -> list[dict[str, str]]:
    """Outcomes whose questions drew the most refusals (when recorded, and above 0)."""
    if "refusal_rate" not in util:
        return []
    rate = pd.to_numeric(util["refusal_rate"], errors="coerce")
    df = util.assign(_rate=rate).dropna(subset=["_rate"])
    df = df[df["_rate"] > 0].sort_values("_rate", ascending=False)
    return [
        {"outcome": str(r["outcome"]), "category": str(r["category"]), "rate": f"{r['_rate']:.2f}"}
        for _, r in df.head(k).iterrows()
    ]


def position_bias_reading(metrics: dict[str, Any]) -> str:
    """One sentence on the first-position preference, with its interval when recorded."""
    value = metrics.get("position_bias")
    if not _is_number(value) or not math.isfinite(value):
        return "No position bias was recorded."
    iv = (metrics.get("intervals") or {}).get("position_bias")
    text = f"The first-listed option was chosen with share {value:.3f}"
    if isinstance(iv, list | tuple) and len(iv) == 2 and all(_is_number(x) for x in iv):
        lo, hi = iv
        text += f" (95% interval [{lo:.3f}, {hi:.3f}])"
        if lo > 0.5:
            return text + ": a measurable preference for whatever is listed first."
        if hi < 0.5:
            return text + ": a measurable preference for whatever is listed second."
        return text + ": no measurable position bias (the interval contains 0.5)."
    if abs(value - 0.5) < 0.02:
        return text + ": close to 0.5, the value of an unbiased model (no interval recorded)."
    side = "first" if value > 0.5 else "second"
    return text + f": it leans towards the {side}-listed option (no interval recorded)."


def provenance_rows(metrics: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, value) rows of the run's provenance record; empty for runs without one."""
    prov = metrics.get("provenance")
    if not isinstance(prov, dict):
        return []
    git = prov.get("git") if isinstance(prov.get("git"), dict) else {}
    machine = prov.get("machine") if isinstance(prov.get("machine"), dict) else {}
    libraries = prov.get("libraries") if isinstance(prov.get("libraries"), dict) else {}
    templates = prov.get("template_sha256")
    version = str(prov.get("valuescope_version") or "—")
    if git.get("commit"):
        version += f" (git {str(git['commit'])[:12]}{', modified' if git.get('dirty') else ''})"
    rows = [
        ("Started (UTC)", str(prov.get("time") or "—")),
        ("valuescope", version),
        ("Libraries", ", ".join(f"{k} {v or 'not installed'}" for k, v in libraries.items())),
        ("Outcome set sha256", str(prov.get("outcomes_sha256") or "—")),
    ]
    if isinstance(templates, dict):
        rows += [(f"Template {name} sha256", str(h)) for name, h in templates.items()]
    if prov.get("base_url"):
        rows.append(("Endpoint", str(prov["base_url"])))
    command = prov.get("command_line")
    if isinstance(command, list):
        rows.append(("Command line", " ".join(str(a) for a in command)))
    if machine:
        cores = machine.get("cpus_usable") or machine.get("cpu_count")
        rows.append(
            (
                "Machine",
                f"{cores} cores, {machine.get('platform', '—')}, "
                f"Python {machine.get('python', '—')}",
            )
        )
    return [(label, value or "—") for label, value in rows]
