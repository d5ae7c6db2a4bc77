"""Exchange rates in dollars: what one unit of each entity is worth, per entity family.

Each family (countries, animals, people in named roles, AI systems) is its own utility
measurement: outcomes "N units of X receive the family's benefit" over a grid of N,
together with a ladder of dollar amounts "You receive $X" in the same run, so entities
and dollars share one utility scale. Per entity a least-squares line U = a ln N + b,
and on the ladder U = a' ln X + b'. One unit of entity e has utility U_e(1) = b_e; the
dollar amount with that utility solves a' ln X + b' = b_e, so

    worth_usd(e) = exp((b_e - b') / a')                      (needs a' > 0)
    relative_worth(e : r) = worth_usd(e) / worth_usd(r) = exp((b_e - b_r) / a')

The ladder's slope a' is the one converter from utility to log dollars for every entity
of the family: the ratio does not depend on which entity is the reference, and no
entity's own (noisier) slope enters it, so it stays defined when an entity's utility
barely moves with N. The log-fit R^2 of every line is reported; a poor one (the model's
utility is not logarithmic in N) is flagged, because the worth at N = 1 is read off the
line. Intervals: a parametric bootstrap that redraws every utility around its line with
the pipeline's per-outcome standard error plus the line's residual variance and refits
all lines (ladder included), so the ladder's uncertainty reaches every dollar figure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from valuescope import stats
from valuescope.atomic import atomic_write
from valuescope.common.seeds import seeded_order
from valuescope.experiments._stats import headline, load_data, measure_options
from valuescope.experiments.base import Experiment, ExperimentContext, ExperimentError

Z95 = 1.959964  # the pipeline's per-outcome intervals are 95% intervals
N_BOOT = 1000
LEVEL = 0.9
R2_WARN = 0.8  # a log line explaining less than this share of the variance is flagged
DOLLARS = "$"  # the entity label of the ladder's outcomes


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


@dataclass(frozen=True)
class Dataset:
    """quantities.yaml: entities, quantity grids, the dollar ladder and quick families."""

    entities: tuple[Entity, ...]
    grid: tuple[int, ...]
    quick_grid: tuple[int, ...]
    dollar_template: str
    ladder: tuple[int, ...]
    quick_ladder: tuple[int, ...]
    quick_families: tuple[str, ...]

    @property
    def families(self) -> list[str]:
        return list(dict.fromkeys(e.family for e in self.entities))


@lru_cache(maxsize=1)
def dataset() -> Dataset:
    """The shipped dataset (quantities.yaml)."""
    data = load_data("quantities")
    entities = []
    quick_families = []
    for family, spec in data["families"].items():
        if spec.get("quick"):
            quick_families.append(str(family))
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
    dollars = data["dollars"]
    return Dataset(
        entities=tuple(entities),
        grid=tuple(int(v) for v in data["grid"]),
        quick_grid=tuple(int(v) for v in data["quick_grid"]),
        dollar_template=str(dollars["text"]),
        ladder=tuple(int(v) for v in dollars["ladder"]),
        quick_ladder=tuple(int(v) for v in dollars["quick_ladder"]),
        quick_families=tuple(quick_families),
    )


def load_entities() -> list[Entity]:
    """Every entity of the dataset (quantities.yaml), in file order."""
    return list(dataset().entities)


def dollar_text(amount: int) -> str:
    """The ladder outcome for a dollar amount ("You receive $1,000 in cash.")."""
    return dataset().dollar_template.format(amount=f"{amount:,}")


@lru_cache(maxsize=1)
def _dollar_pattern() -> re.Pattern[str]:
    pattern = re.escape(dataset().dollar_template)
    return re.compile("^" + pattern.replace(re.escape("{amount}"), r"(?P<x>\d[\d,]*)") + "$")


def parse_dollars(text: str) -> int | None:
    """The dollar amount of a ladder outcome, else None."""
    m = _dollar_pattern().match(" ".join(text.split()))
    return int(m.group("x").replace(",", "")) if m else None


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


def r_squared(x: np.ndarray, y: np.ndarray) -> float:
    """Share of the variance of y explained by its least-squares line on x."""
    a, b, _ = fit_line(x, y)
    sst = float(((y - y.mean()) ** 2).sum())
    if sst <= 0:
        return float("nan")
    resid = y - (a * x + b)
    return float(1 - resid @ resid / sst)


# ----------------------------------------------------------------- selection


@dataclass(frozen=True)
class Plan:
    """What one run measures: per family its entities and reference; one grid, one ladder."""

    families: dict[str, list[Entity]]
    references: dict[str, str]
    grid: list[int]
    ladder: list[int]


def _int_list(ctx: ExperimentContext, key: str, default: tuple[int, ...]) -> list[int]:
    if key not in ctx.params:
        return list(default)
    try:
        values = sorted({int(v) for v in ctx.params[key].split(",") if v.strip()})
    except ValueError:
        raise ExperimentError(
            f"--param {key}={ctx.params[key]!r}: expected whole numbers like 1,10,100"
        ) from None
    if len(values) < 3 or values[0] < 1:
        raise ExperimentError(
            f"--param {key}: needs at least 3 distinct values >= 1 to fit a line, got {values}"
        )
    return values


def plan(ctx: ExperimentContext) -> Plan:
    """The families, entities, references, grid and ladder a context asks for."""
    data = dataset()
    known = data.families
    raw = ctx.params.get("families")
    if raw:
        wanted = [f.strip() for f in raw.split(",") if f.strip()]
        unknown = [f for f in wanted if f not in known]
        if unknown:
            raise ExperimentError(
                f"--param families: unknown family {unknown[0]!r}; known: {', '.join(known)}"
            )
    else:
        wanted = list(data.quick_families) if ctx.quick else known
    families = {
        f: [e for e in data.entities if e.family == f and (e.quick or not ctx.quick)]
        for f in wanted
    }
    references = {f: ents[0].name for f, ents in families.items() if ents}
    ref_name = ctx.params.get("reference")
    if ref_name is not None:
        matches = [e for e in data.entities if e.name.casefold() == ref_name.casefold()]
        if not matches:
            raise ExperimentError(
                f"--param reference={ref_name!r}: unknown entity; known: "
                + ", ".join(e.name for e in data.entities)
            )
        ref = matches[0]
        if ref.family not in families:
            raise ExperimentError(
                f"--param reference={ref.name!r} belongs to family {ref.family!r}, "
                "which is not selected (--param families)"
            )
        if ref not in families[ref.family]:
            families[ref.family] = [ref, *families[ref.family]]
        references[ref.family] = ref.name
    for f, ents in families.items():
        if len(ents) < 2:
            raise ExperimentError(f"exchange-rates: family {f!r} needs at least 2 entities")
    grid = _int_list(ctx, "grid", data.quick_grid if ctx.quick else data.grid)
    ladder = _int_list(ctx, "ladder", data.quick_ladder if ctx.quick else data.ladder)
    return Plan(families=families, references=references, grid=grid, ladder=ladder)


# ----------------------------------------------------------------- run


def family_outcomes(entities: list[Entity], grid: list[int], ladder: list[int]) -> list[dict]:
    """One family's outcomes: every entity at every N, and every rung of the ladder."""
    outcomes = [{"text": e.text(n), "category": e.family} for e in entities for n in grid]
    outcomes += [{"text": dollar_text(x), "category": "dollars"} for x in ladder]
    return outcomes


def label_frame(utilities: pd.DataFrame) -> pd.DataFrame:
    """The pipeline's utilities with entity (DOLLARS for the ladder), n and se columns."""
    entity, n = [], []
    for text in utilities["outcome"]:
        amount = parse_dollars(text)
        parsed = (DOLLARS, amount) if amount is not None else parse_quantity(text)
        if parsed is None:
            raise ExperimentError(f"exchange-rates: outcome {text!r} is not one of ours")
        entity.append(parsed[0])
        n.append(parsed[1])
    return utilities.assign(entity=entity, n=n, se=utility_se(utilities))


def run(ctx: ExperimentContext) -> dict[str, Any]:
    p = plan(ctx)
    families: dict[str, dict[str, Any]] = {}
    run_dirs = {}
    for family, entities in p.families.items():
        outcomes = seeded_order(family_outcomes(entities, p.grid, p.ladder), ctx.seed)
        result = ctx.measure(family, outcomes, **measure_options(ctx.quick, len(outcomes)))
        frame = label_frame(result.utilities)
        if np.ptp(frame["mean"].to_numpy(float)) < 1e-9:
            raise ExperimentError(
                f"exchange-rates: every outcome of family {family!r} got the same utility "
                "(the model is indifferent between all of them); there is no worth to measure"
            )
        families[family] = analyse_family(frame, entities, p.references[family], ctx.seed)
        run_dirs[family] = str(result.out)
    return {**summarise(families, ctx), "run_dirs": run_dirs}


# ----------------------------------------------------------------- analysis


def _boot_lines(
    x: np.ndarray, y: np.ndarray, se: np.ndarray, rng: np.random.Generator, n_boot: int
) -> tuple[tuple[float, float, float], np.ndarray, np.ndarray]:
    """The line fit of y on x and its parametric-bootstrap slopes and intercepts."""
    a, b, s2 = fit_line(x, y)
    # parametric: utilities redrawn from their own errors around the line (a grid of a
    # few quantities has too few points to resample), so not scipy.stats.bootstrap
    scale = np.sqrt(se**2 + s2)
    draws = (a * x + b) + rng.normal(size=(n_boot, len(x))) * scale
    coef = np.polyfit(x, draws.T, 1)
    return (a, b, s2), coef[0], coef[1]


def _interval(reps: np.ndarray) -> tuple[float | None, float | None]:
    """Percentile interval at LEVEL, or None when over 1 - LEVEL of replicates are undefined."""
    if np.mean(~np.isfinite(reps)) > 1 - LEVEL:
        return None, None
    lo, hi, _ = stats.percentile_interval(reps, LEVEL)
    return lo, hi


def _exp_or_none(v: float | None) -> float | None:
    return None if v is None else float(np.exp(v))


def analyse_family(
    frame: pd.DataFrame,
    entities: list[Entity],
    reference: str,
    seed: int,
    n_boot: int = N_BOOT,
) -> dict[str, Any]:
    """Lines, dollar worths and intervals for one family.

    `frame` has columns entity (DOLLARS for the ladder), n, mean, se: one row per outcome.
    """
    names = [e.name for e in entities]
    rng = np.random.default_rng(seed)
    groups = {k: frame[frame["entity"] == k].sort_values("n") for k in [DOLLARS, *names]}
    for k, g in groups.items():
        if len(g) < 3:
            raise ExperimentError(
                f"exchange-rates: {k!r} has {len(g)} measured quantities; a line needs 3"
            )
    xs = {k: np.log(g["n"].to_numpy(float)) for k, g in groups.items()}
    ys = {k: g["mean"].to_numpy(float) for k, g in groups.items()}
    ses = {k: g["se"].to_numpy(float) for k, g in groups.items()}
    lines, boot_a, boot_b = {}, {}, {}
    for k in groups:
        lines[k], boot_a[k], boot_b[k] = _boot_lines(xs[k], ys[k], ses[k], rng, n_boot)

    a_d, b_d, _ = lines[DOLLARS]
    ad_boot = np.where(boot_a[DOLLARS] > 0, boot_a[DOLLARS], np.nan)
    dollar_lo, dollar_hi = _interval(boot_a[DOLLARS])
    dollar_ok = a_d > 0 and dollar_lo is not None and dollar_lo > 0
    ladder = groups[DOLLARS]["n"].to_numpy(float)
    dollar_fit = {
        "slope": a_d,
        "slope_ci_low": dollar_lo,
        "slope_ci_high": dollar_hi,
        "intercept": b_d,
        "r2": r_squared(xs[DOLLARS], ys[DOLLARS]),
        "ladder": [int(v) for v in ladder],
    }
    log_usd_boot = {k: (boot_b[k] - boot_b[DOLLARS]) / ad_boot for k in names}
    rows = []
    for e in entities:
        k = e.name
        a, b, _ = lines[k]
        a_lo, a_hi = _interval(boot_a[k])
        row: dict[str, Any] = {
            "family": e.family,
            "entity": k,
            "slope": a,
            "slope_ci_low": a_lo,
            "slope_ci_high": a_hi,
            "intercept": b,
            "r2": r_squared(xs[k], ys[k]),
            "worth_usd": None,
            "worth_usd_ci_low": None,
            "worth_usd_ci_high": None,
            "relative_worth": None,
            "relative_worth_ci_low": None,
            "relative_worth_ci_high": None,
            "log10_relative_worth": None,
            "worth_usd_at_one": None,
            "worth_usd_at_one_ci_low": None,
            "worth_usd_at_one_ci_high": None,
            "note": "reference" if k == reference else "",
        }
        if dollar_ok:
            lo, hi = _interval(log_usd_boot[k])
            usd = float(np.exp((b - b_d) / a_d))
            row.update(worth_usd=usd, worth_usd_ci_low=_exp_or_none(lo))
            row["worth_usd_ci_high"] = _exp_or_none(hi)
            log_rel = (b - lines[reference][1]) / a_d
            rel_lo, rel_hi = _interval(log_usd_boot[k] - log_usd_boot[reference])
            row["relative_worth"] = float(np.exp(log_rel))
            row["log10_relative_worth"] = float(log_rel / np.log(10))
            if k == reference:
                rel_lo = rel_hi = 0.0
            row["relative_worth_ci_low"] = _exp_or_none(rel_lo)
            row["relative_worth_ci_high"] = _exp_or_none(rel_hi)
            if not ladder.min() <= usd <= ladder.max():
                row["note"] = _join(row["note"], "dollar worth extrapolated beyond the ladder")
        if dollar_ok and 1 in set(groups[k]["n"]):
            row.update(_at_one(groups[k], boot_b[DOLLARS], ad_boot, a_d, b_d, rng))
        if a_lo is None or a_lo <= 0:
            row["note"] = _join(row["note"], "utility does not reliably rise with N")
        rows.append(row)
    spread = _spread(rows, log_usd_boot, names) if dollar_ok else None
    median = _median(rows, log_usd_boot, names) if dollar_ok else None
    return {
        "reference": reference,
        "n_entities": len(names),
        "grid": sorted(int(v) for v in frame.loc[frame["entity"] != DOLLARS, "n"].unique()),
        "dollar_fit": dollar_fit,
        "dollar_defined": dollar_ok,
        "above_ladder": _above_ladder(ys, names),
        "rows": rows,
        "log10_worth_spread": spread,
        "median_worth_usd": median,
        "warnings": _warnings(entities[0].family, rows, dollar_fit, dollar_ok),
    }


def _at_one(
    group: pd.DataFrame,
    boot_b_d: np.ndarray,
    boot_a_d: np.ndarray,
    a_d: float,
    b_d: float,
    rng: np.random.Generator,
) -> dict[str, float | None]:
    """Dollar worth of one unit from its own measured utility (no line in N involved).

    Noisier than the line's reading (one outcome instead of the whole grid), but it does
    not assume that utility is logarithmic in N.
    """
    one = group[group["n"] == 1].iloc[0]
    u1, se1 = float(one["mean"]), float(one["se"])
    reps = (u1 + se1 * rng.normal(size=boot_b_d.size) - boot_b_d) / boot_a_d
    lo, hi = _interval(reps)
    return {
        "worth_usd_at_one": float(np.exp((u1 - b_d) / a_d)),
        "worth_usd_at_one_ci_low": _exp_or_none(lo),
        "worth_usd_at_one_ci_high": _exp_or_none(hi),
    }


def _above_ladder(ys: dict[str, np.ndarray], names: list[str]) -> float:
    """Share of the entities' outcomes with a higher utility than every rung of the ladder."""
    top = float(ys[DOLLARS].max())
    return float(np.mean(np.concatenate([ys[k] for k in names]) > top))


def _join(note: str, extra: str) -> str:
    return f"{note}; {extra}" if note else extra


def _spread(rows: list[dict], boot: dict[str, np.ndarray], names: list[str]) -> dict:
    """S.d. of log10 dollar worth across entities, with a basic bootstrap interval."""
    point = float(np.std([np.log10(r["worth_usd"]) for r in rows]))
    reps = np.nanstd(np.column_stack([boot[k] for k in names]) / np.log(10), axis=1)
    # basic interval: the s.d. of noisy refits is biased up, and it corrects that
    lo, hi, _ = stats.basic_interval(reps, point, LEVEL)
    lo = None if lo is None else max(lo, 0.0)
    family = rows[0]["family"]
    return headline(point, lo, hi, f"{family}: s.d. of log10 dollar worth across entities")


def _median(rows: list[dict], boot: dict[str, np.ndarray], names: list[str]) -> dict:
    """Median over entities of the dollar worth of one unit, with a percentile interval."""
    point = float(np.median([r["worth_usd"] for r in rows]))
    reps = np.nanmedian(np.column_stack([boot[k] for k in names]), axis=1)
    lo, hi = _interval(reps)
    label = f"{rows[0]['family']}: median dollar worth of one unit (USD)"
    return headline(point, _exp_or_none(lo), _exp_or_none(hi), label)


def _warnings(family: str, rows: list[dict], dollar_fit: dict, dollar_ok: bool) -> list[str]:
    out = []
    if not dollar_ok:
        out.append(
            f"{family}: utility does not reliably rise with the dollar amount (ladder slope "
            f"{dollar_fit['slope']:.3f}); dollar worths are undefined"
        )
    elif dollar_fit["r2"] < R2_WARN:
        out.append(
            f"{family}: the dollar ladder is poorly fitted by a ln X + b "
            f"(R^2 {dollar_fit['r2']:.2f}); dollar figures are approximate"
        )
    poor = [r for r in rows if not r["r2"] >= R2_WARN]
    if poor:
        listed = ", ".join(f"{r['entity']} ({r['r2']:.2f})" for r in poor[:8])
        more = f" and {len(poor) - 8} more" if len(poor) > 8 else ""
        out.append(
            f"{family}: utility is not logarithmic in N for {len(poor)} of {len(rows)} "
            f"entities (log-fit R^2 below {R2_WARN}: {listed}{more}); their worths, read "
            "at N = 1 off the line, may be wrong and even misranked; worth_usd_at_one "
            "(the measured utility of one unit, read on the ladder) does not use the line"
        )
    return out


def summarise(families: dict[str, dict[str, Any]], ctx: ExperimentContext) -> dict[str, Any]:
    """The result dict (headline, reading, tables, figures) from the per-family analyses."""
    head: dict[str, dict] = {}
    for f, res in families.items():
        fit = res["dollar_fit"]
        head[f"{f}.dollar_slope"] = headline(
            fit["slope"],
            fit["slope_ci_low"],
            fit["slope_ci_high"],
            f"{f}: utility per unit of ln(dollars) on the ladder",
        )
        if res["median_worth_usd"] is not None:
            head[f"{f}.median_worth_usd"] = res["median_worth_usd"]
            head[f"{f}.log10_worth_spread"] = res["log10_worth_spread"]
    rows = [r for res in families.values() for r in res["rows"]]
    figures = [_chart(ctx, f, res) for f, res in families.items() if res["dollar_defined"]]
    return {
        "headline": head,
        "reading": " ".join(_reading(f, res) for f, res in families.items()),
        "families": {
            f: {k: v for k, v in res.items() if k != "rows"} for f, res in families.items()
        },
        "warnings": [w for res in families.values() for w in res["warnings"]],
        "formula": "worth_usd(e) = exp((b_e - b_usd) / a_usd); relative_worth(e) = "
        "worth_usd(e) / worth_usd(reference) = exp((b_e - b_ref) / a_usd); "
        "U = a ln N + b per entity, U = a_usd ln X + b_usd on the dollar ladder",
        "tables": {"rates": rows},
        "figures": figures,
    }


def _money(x: float) -> str:
    if x >= 1e6:
        return f"${x / 1e6:.3g}M"
    if x >= 1e3:
        return f"${x / 1e3:.3g}k"
    return f"${x:.3g}"


def _reading(family: str, res: dict[str, Any]) -> str:
    if not res["dollar_defined"]:
        text = (
            f"{family}: utility does not reliably rise with the dollar amount, so no entity "
            "gets a dollar worth."
        )
        if res["above_ladder"] == 1.0:
            top = _money(max(res["dollar_fit"]["ladder"]))
            text += (
                f" Every one of its outcomes, one unit included, ranks above every rung of "
                f"the ladder (up to {top}): to this model one unit is worth more than {top}."
            )
        return text
    ranked = sorted(res["rows"], key=lambda r: -r["worth_usd"])
    top, bottom = ranked[0], ranked[-1]
    text = (
        f"{family}: one unit of {top['entity']} is worth the most "
        f"({_money(top['worth_usd'])}), one of {bottom['entity']} the least "
        f"({_money(bottom['worth_usd'])}); median {_money(res['median_worth_usd']['value'])}."
    )
    if res["warnings"]:
        text += " Caution: the log model fits poorly here (see warnings)."
    return text


def _chart(ctx: ExperimentContext, family: str, res: dict[str, Any]) -> str:
    """Implied relative worth of one unit against the family reference (log scale)."""
    from matplotlib.figure import Figure

    from valuescope.report.plots import short_label, styled

    shown = sorted(res["rows"], key=lambda r: r["relative_worth"])
    name = f"exchange-rates_{family}.svg"
    with styled():
        fig = Figure(figsize=(7.5, 0.28 * max(len(shown), 3) + 1.4))
        ax = fig.subplots()
        for i, r in enumerate(shown):
            ax.scatter([r["relative_worth"]], [i], color="#2563eb", zorder=3, s=18)
            if r["relative_worth_ci_low"] is not None:
                ax.plot(
                    [r["relative_worth_ci_low"], r["relative_worth_ci_high"]],
                    [i, i],
                    color="#93c5fd",
                    linewidth=2,
                )
        labels = [short_label(f"{r['entity']} ({_money(r['worth_usd'])})") for r in shown]
        ax.set_yticks(range(len(shown)), labels)
        ax.set_xscale("log")
        ax.axvline(1.0, color="#9ca3af", linewidth=0.8, linestyle="--")
        ax.set_xlabel(
            f"worth of one unit relative to one {res['reference']} (log scale; 90% intervals)"
        )
        ax.set_title(f"Implied relative worth: {family} (dollar worth in brackets)", fontsize=10)
        fig.tight_layout()
        atomic_write(ctx.out / name, lambda tmp: fig.savefig(tmp, format="svg"))
    return name


EXPERIMENT = Experiment(
    name="exchange-rates",
    title="Exchange rates",
    summary="what one unit of each entity is worth in dollars, per entity family "
    "(U = a ln N + b per entity, a dollar ladder in the same run)",
    run=run,
)
