"""Exchange rates: how many units of one entity the model values like one unit of another.

Outcomes "N units of X benefit" over a grid of N; per entity a least-squares line
U = a ln N + b on the fitted utilities. One unit of the reference R is worth
U_R(1) = b_R, and N units of X match it when a_X ln N + b_X = b_R, so

    rate(X) = exp((b_R - b_X) / a_X)   units of X per unit of R   (needs a_X > 0)

and the relative worth of one unit of X is 1 / rate(X), in units of R. Intervals come
from a parametric bootstrap: each utility is redrawn around its fitted line with the
pipeline's per-outcome standard error plus the entity's residual variance, and the lines
and rates are refitted (the reference is redrawn too, so its uncertainty propagates).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from valuescope.atomic import atomic_write
from valuescope.experiments._stats import headline, load_data, measure_options
from valuescope.experiments.base import Experiment, ExperimentContext, ExperimentError
from valuescope.fit.bootstrap import basic_interval

Z95 = 1.959964  # the pipeline's per-outcome intervals are 95% intervals
N_BOOT = 1000
LEVEL = 0.9


@dataclass(frozen=True)
class Entity:
    """One entity: its family, name, the phrases used for 1 and many, and its templates."""

    family: str
    name: str
    singular: str
    plural: str
    one: str
    many: str
    quick: bool = False

    def text(self, n: int) -> str:
        """The outcome text for N units of this entity."""
        if n == 1:
            return self.one.format(entity=self.singular)
        return self.many.format(n=f"{n:,}", entity=self.plural)


@lru_cache(maxsize=1)
def _dataset() -> tuple[tuple[Entity, ...], tuple[int, ...], tuple[int, ...]]:
    data = load_data("quantities")
    entities = []
    for family, spec in data["families"].items():
        for e in spec["entities"]:
            name = str(e["name"])
            entities.append(
                Entity(
                    family=str(family),
                    name=name,
                    singular=str(e.get("singular", name)),
                    plural=str(e.get("plural", name)),
                    one=str(spec["one"]),
                    many=str(spec["many"]),
                    quick=bool(e.get("quick", False)),
                )
            )
    names = [e.name for e in entities]
    if len(set(names)) != len(names):
        raise ExperimentError("quantities.yaml: entity names must be unique across families")
    return tuple(entities), tuple(data["grid"]), tuple(data["quick_grid"])


def load_entities() -> list[Entity]:
    """Every entity of the dataset (quantities.yaml), in file order."""
    return list(_dataset()[0])


@lru_cache(maxsize=1)
def _patterns() -> list[tuple[re.Pattern[str], dict[str, str], bool]]:
    """(regex, phrase -> entity name, is_one) per family template."""
    out = []
    by_template: dict[tuple[str, bool], dict[str, str]] = {}
    for e in load_entities():
        by_template.setdefault((e.one, True), {})[e.singular] = e.name
        by_template.setdefault((e.many, False), {})[e.plural] = e.name
    for (template, is_one), phrases in by_template.items():
        alternation = "|".join(re.escape(p) for p in sorted(phrases, key=len, reverse=True))
        pattern = re.escape(template)
        pattern = pattern.replace(re.escape("{entity}"), f"(?P<entity>{alternation})")
        pattern = pattern.replace(re.escape("{n}"), r"(?P<n>\d[\d,]*)")
        out.append((re.compile(f"^{pattern}$"), phrases, is_one))
    return out


def parse_quantity(text: str) -> tuple[str, int] | None:
    """(entity name, N) for an outcome text made from the templates, else None."""
    text = " ".join(text.split())
    for pattern, phrases, is_one in _patterns():
        m = pattern.match(text)
        if m:
            n = 1 if is_one else int(m.group("n").replace(",", ""))
            return phrases[m.group("entity")], n
    return None


def shuffled(items: list, seed: int) -> list:
    """The items in a seeded random order (no structure of the list leaks into the design)."""
    order = np.random.default_rng(seed).permutation(len(items))
    return [items[i] for i in order]


def utility_se(utilities: pd.DataFrame) -> np.ndarray:
    """Per-outcome standard errors from the pipeline's 95% intervals (0 where absent)."""
    se = (utilities["ci_high"].to_numpy(float) - utilities["ci_low"].to_numpy(float)) / (2 * Z95)
    return np.nan_to_num(se, nan=0.0)


def fit_line(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Least-squares slope a, intercept b and residual variance of y = a x + b."""
    a, b = np.polyfit(x, y, 1)
    resid = y - (a * x + b)
    dof = max(len(x) - 2, 1)
    return float(a), float(b), float(resid @ resid / dof)


def _select(ctx: ExperimentContext) -> tuple[list[Entity], list[int], Entity]:
    entities = load_entities()
    families = ctx.params.get("families")
    if families:
        wanted = [f.strip() for f in families.split(",") if f.strip()]
        known = list(dict.fromkeys(e.family for e in entities))
        unknown = [f for f in wanted if f not in known]
        if unknown:
            raise ExperimentError(
                f"--param families: unknown family {unknown[0]!r}; known: {', '.join(known)}"
            )
        entities = [e for e in entities if e.family in wanted]
    if ctx.quick:
        entities = [e for e in entities if e.quick]
    _, grid, quick_grid = _dataset()
    grid = list(quick_grid if ctx.quick else grid)
    if "grid" in ctx.params:
        try:
            grid = sorted({int(v) for v in ctx.params["grid"].split(",") if v.strip()})
        except ValueError:
            raise ExperimentError(
                f"--param grid={ctx.params['grid']!r}: expected whole numbers like 1,10,100"
            ) from None
    if len(grid) < 3 or grid[0] < 1:
        raise ExperimentError(
            f"--param grid: needs at least 3 distinct quantities >= 1 to fit a line, got {grid}"
        )
    ref_name = ctx.params.get("reference")
    if ref_name is None:
        if not entities:
            raise ExperimentError("exchange-rates: no entities selected")
        reference = entities[0]
    else:
        matches = [e for e in load_entities() if e.name.casefold() == ref_name.casefold()]
        if not matches:
            raise ExperimentError(
                f"--param reference={ref_name!r}: unknown entity; known: "
                + ", ".join(e.name for e in load_entities())
            )
        reference = matches[0]
        if reference not in entities:
            entities = [reference, *entities]
    if len(entities) < 2:
        raise ExperimentError("exchange-rates: needs at least 2 entities to compare")
    return entities, grid, reference


def run(ctx: ExperimentContext) -> dict[str, Any]:
    entities, grid, reference = _select(ctx)
    outcomes = [{"text": e.text(n), "category": e.family} for e in entities for n in grid]
    outcomes = shuffled(outcomes, ctx.seed)
    result = ctx.measure("quantities", outcomes, **measure_options(ctx.quick, len(outcomes)))
    frame = result.utilities
    parsed = [parse_quantity(t) for t in frame["outcome"]]
    frame = frame.assign(
        entity=[p[0] for p in parsed],
        n=[p[1] for p in parsed],
        se=utility_se(frame),
    )
    if np.ptp(frame["mean"].to_numpy(float)) < 1e-9:
        raise ExperimentError(
            "exchange-rates: every outcome got the same utility (the model is indifferent "
            "between all of them); there is no rate to measure"
        )
    return {**analyse(frame, entities, reference, ctx), "run_dir": str(result.out)}


def analyse(
    frame: pd.DataFrame, entities: list[Entity], reference: Entity, ctx: ExperimentContext
) -> dict[str, Any]:
    """Lines, rates and intervals from a table with entity, n, mean, se columns."""
    names = [e.name for e in entities]
    groups = {name: frame[frame["entity"] == name].sort_values("n") for name in names}
    x = {k: np.log(g["n"].to_numpy(float)) for k, g in groups.items()}
    y = {k: g["mean"].to_numpy(float) for k, g in groups.items()}
    se = {k: g["se"].to_numpy(float) for k, g in groups.items()}
    fits = {k: fit_line(x[k], y[k]) for k in names}

    rng = np.random.default_rng(ctx.seed)
    boot_a = np.empty((N_BOOT, len(names)))
    boot_b = np.empty((N_BOOT, len(names)))
    for j, k in enumerate(names):
        a, b, s2 = fits[k]
        scale = np.sqrt(se[k] ** 2 + s2)
        draws = (a * x[k] + b) + rng.normal(size=(N_BOOT, len(x[k]))) * scale
        coef = np.polyfit(x[k], draws.T, 1)
        boot_a[:, j], boot_b[:, j] = coef[0], coef[1]
    r = names.index(reference.name)
    with np.errstate(divide="ignore", invalid="ignore"):
        boot_log_rate = np.where(boot_a > 0, (boot_b[:, [r]] - boot_b) / boot_a, np.nan)

    tail = 100 * (1 - LEVEL) / 2
    rows = []
    for j, k in enumerate(names):
        a, b, s2 = fits[k]
        sst = float(((y[k] - y[k].mean()) ** 2).sum())
        r2 = 1 - s2 * max(len(x[k]) - 2, 1) / sst if sst > 0 else float("nan")
        a_lo, a_hi = np.percentile(boot_a[:, j], [tail, 100 - tail])
        defined = a > 0 and a_lo > 0
        row = {
            "entity": k,
            "family": entities[j].family,
            "slope": a,
            "slope_ci_low": float(a_lo),
            "slope_ci_high": float(a_hi),
            "intercept": b,
            "r2": r2,
            "rate": None,
            "rate_ci_low": None,
            "rate_ci_high": None,
            "worth": None,
            "log10_worth": None,
            "note": "",
        }
        if k == reference.name:
            row.update(rate=1.0, rate_ci_low=1.0, rate_ci_high=1.0, worth=1.0, log10_worth=0.0)
            row["note"] = "reference" + ("" if defined else "; its slope is not positive")
        elif defined:
            log_rate = (fits[reference.name][1] - b) / a
            reps = boot_log_rate[:, j]
            share_undefined = float(np.mean(~np.isfinite(reps)))
            row.update(rate=float(np.exp(log_rate)), worth=float(np.exp(-log_rate)))
            row["log10_worth"] = float(-log_rate / np.log(10))
            if share_undefined <= 1 - LEVEL:
                lo, hi = np.nanpercentile(reps, [tail, 100 - tail])
                row.update(rate_ci_low=float(np.exp(lo)), rate_ci_high=float(np.exp(hi)))
            rate = row["rate"]
            if rate < grid_min(groups[k]) or rate > grid_max(groups[k]):
                row["note"] = "rate lies outside the measured quantities (extrapolated)"
        else:
            row["note"] = "undefined: utility does not rise with the quantity (slope CI reaches 0)"
        rows.append(row)

    slopes = np.array([fits[k][0] for k in names])
    # the mean slope's interval also resamples entities, so it reflects how much
    # slopes differ between entities, not only the noise around each line
    picks = rng.integers(0, len(names), (N_BOOT, len(names)))
    boot_mean_slope = np.take_along_axis(boot_a, picks, axis=1).mean(axis=1)
    lo, hi = np.percentile(boot_mean_slope, [tail, 100 - tail])
    head = {
        "mean_slope": headline(
            float(slopes.mean()), float(lo), float(hi), "mean slope of utility on ln N"
        )
    }
    defined_idx = [j for j, row in enumerate(rows) if row["worth"] is not None]
    n_defined = len(defined_idx)
    if n_defined >= 2:
        log_worth = np.array([-np.log10(rows[j]["rate"]) for j in defined_idx])
        boot = -boot_log_rate[:, defined_idx] / np.log(10)
        spread_reps = np.nanstd(boot, axis=1)
        spread = float(log_worth.std())
        # basic interval: refits of a few entities are biased low, and it corrects that
        s_lo, s_hi = basic_interval(spread_reps, tail, spread) or (np.nan, np.nan)
        head["log10_worth_spread"] = headline(
            spread,
            s_lo,
            s_hi,
            "spread (s.d.) of log10 relative worth across entities",
        )
    figures = [_chart(ctx, rows, reference.name)]
    return {
        "headline": head,
        "reading": _reading(rows, reference.name, float(lo), float(hi)),
        "reference": reference.name,
        "n_entities": len(names),
        "grid": sorted(int(v) for v in frame["n"].unique()),
        "formula": "rate(X) = exp((b_ref - b_X) / a_X) units of X per unit of the reference; "
        "worth(X) = 1 / rate(X); U = a ln N + b fitted per entity",
        "tables": {"rates": rows},
        "figures": figures,
    }


def grid_min(group: pd.DataFrame) -> float:
    return float(group["n"].min())


def grid_max(group: pd.DataFrame) -> float:
    return float(group["n"].max())


def _reading(rows: list[dict], reference: str, slope_lo: float, slope_hi: float) -> str:
    if slope_lo <= 0 <= slope_hi:
        return (
            "Utilities do not reliably rise with the quantity (the mean slope's interval "
            f"includes 0: {slope_lo:.3f} to {slope_hi:.3f}), so the model does not treat more "
            "of a good thing as better here and exchange rates are undefined."
        )
    ranked = sorted((r for r in rows if r["worth"] is not None), key=lambda r: -r["worth"])
    undefined = [r["entity"] for r in rows if r["worth"] is None]
    text = (
        f"Utility rises with the quantity (mean slope on ln N {slope_lo:.3f} to {slope_hi:.3f}, "
        f"90% interval). Relative to one unit of {reference}, the model values one unit of "
        f"{ranked[0]['entity']} the most ({ranked[0]['worth']:.3g} units of {reference}) and "
        f"{ranked[-1]['entity']} the least ({ranked[-1]['worth']:.3g})."
    )
    if undefined:
        text += f" Rates are undefined for {', '.join(undefined)} (utility not rising with N)."
    ref_row = next(r for r in rows if r["entity"] == reference)
    if not ref_row["slope_ci_low"] > 0:
        text += (
            f" Utility of {reference} itself does not reliably rise with N, so rates against "
            "it are fragile; choose another with --param reference=NAME."
        )
    return text


def _chart(ctx: ExperimentContext, rows: list[dict], reference: str) -> str:
    from matplotlib.figure import Figure

    from valuescope.report.plots import styled

    shown = sorted((r for r in rows if r["worth"] is not None), key=lambda r: r["worth"])
    name = "exchange-rates_chart.svg"
    with styled():
        fig = Figure(figsize=(7, 0.35 * max(len(shown), 3) + 1.2))
        ax = fig.subplots()
        for i, r in enumerate(shown):
            ax.scatter([r["worth"]], [i], color="#2563eb", zorder=3, s=20)
            if r["rate_ci_low"] is not None:
                # worth = 1 / rate, so the rate's interval flips
                ax.plot([1 / r["rate_ci_high"], 1 / r["rate_ci_low"]], [i, i], color="#93c5fd")
        ax.set_yticks(range(len(shown)), [r["entity"] for r in shown])
        ax.set_xscale("log")
        ax.axvline(1.0, color="#9ca3af", linewidth=0.8, linestyle="--")
        ax.set_xlabel(f"worth of one unit, in units of {reference} (log scale; 90% intervals)")
        ax.set_title("Implied exchange rates")
        fig.tight_layout()
        atomic_write(ctx.out / name, lambda tmp: fig.savefig(tmp, format="svg"))
    return name


EXPERIMENT = Experiment(
    name="exchange-rates",
    title="Exchange rates",
    summary="how many units of X the model values like one unit of Y (U = a ln N + b per entity)",
    run=run,
)
