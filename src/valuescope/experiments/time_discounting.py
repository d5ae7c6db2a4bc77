"""Time discounting, non-parametric: indifference points from direct choices.

The model chooses between "$X today" and "$X m in t months" over a grid of delays t
and multipliers m (both orders of every pair). For each delay, P(later) over ln m is
the choice curve; it is made monotone (isotonic regression) and the indifference
multiplier m*(t) is where it crosses 1/2, interpolated on the probit scale between the
two grid points around the crossing (a monotone cubic through all of them). The
discount factor is d(t) = 1 / m*(t), in money: no assumption about how the model values
money enters. Two one-parameter curves are
fitted to ln d by least squares (t in months):

    exponential  d(t) = delta ** t        (ln d = t ln delta)
    hyperbolic   d(t) = 1 / (1 + k t)     (ln d = -ln(1 + k t))

Which fits better is decided on held-out delays: each delay is predicted by both curves
fitted to the other delays; the per-delay differences of squared errors (exponential
minus hyperbolic) get a Hodges-Lehmann location with the 90% interval of the Wilcoxon
signed-rank test. Above 0: hyperbolic; below 0: exponential; covering 0, or held-out
RMSEs within 10% of each other: "undecided".
Intervals on m*: residual bootstrap within each delay; on k and delta: bootstrap over
delays.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
from scipy.interpolate import PchipInterpolator
from scipy.optimize import brentq, isotonic_regression, minimize_scalar
from scipy.special import ndtri
from scipy.stats import rankdata

from valuescope import stats
from valuescope.atomic import atomic_write
from valuescope.common.seeds import stable_seed
from valuescope.experiments._choices import ask_pairs
from valuescope.experiments._stats import bootstrap_mean, headline, headline_from, load_data
from valuescope.experiments.base import Experiment, ExperimentContext, ExperimentError
from valuescope.experiments.params import read_params
from valuescope.runcore.rundir import write_csv

N_BOOT = 400
LEVEL = 0.9
MONTHS = {"day": 12 / 365.25, "week": 12 / 52.18, "month": 1.0, "year": 12.0}
# the choices must rise with the later amount at this significance (permutation p-value)
# before any indifference point is read off them
EFFECT_ALPHA = 0.01
_DELAY_RE = re.compile(r"^(\d+(?:\.\d+)?) (day|week|month|year)s?$")
_P_CLIP = 1e-4  # probit interpolation: P(later) clipped to [clip, 1 - clip]
# the verdict's practical margin: the losing curve's held-out RMSE must be this many
# times the winner's (besides the signed-rank interval excluding 0)
RMSE_MARGIN = 1.1


@lru_cache(maxsize=1)
def _dataset() -> dict[str, Any]:
    return load_data("discounting")


def delay_months(delay: str) -> float:
    """Months in a delay written like '6 months' or '1 year'."""
    m = _DELAY_RE.match(delay.strip())
    if not m:
        raise ExperimentError(f"delay {delay!r}: expected a number and day/week/month/year")
    return float(m.group(1)) * MONTHS[m.group(2)]


def _money(amount: float) -> str:
    return f"{amount:,.0f}"


def now_text(amount: float) -> str:
    """Outcome text for an amount received now."""
    return _dataset()["now"].replace("{amount}", _money(amount))


def later_text(amount: float, delay: str) -> str:
    """Outcome text for an amount received after a delay."""
    return _dataset()["later"].replace("{amount}", _money(amount)).replace("{delay}", delay)


@lru_cache(maxsize=1)
def _patterns() -> tuple[re.Pattern[str], re.Pattern[str]]:
    amount = r"(?P<amount>\d[\d,]*(?:\.\d+)?)"
    delay = r"(?P<delay>\d+(?:\.\d+)? (?:day|week|month|year)s?)"

    def compile_(template: str) -> re.Pattern[str]:
        pattern = re.escape(template)
        pattern = pattern.replace(re.escape("{amount}"), amount)
        pattern = pattern.replace(re.escape("{delay}"), delay)
        return re.compile(f"^{pattern}$")

    return compile_(_dataset()["now"]), compile_(_dataset()["later"])


def parse_payment(text: str) -> tuple[float, float] | None:
    """(amount in dollars, delay in months) for a text from the templates, else None."""
    text = " ".join(text.split())
    now, later = _patterns()
    if m := now.match(text):
        return float(m.group("amount").replace(",", "")), 0.0
    if m := later.match(text):
        return float(m.group("amount").replace(",", "")), delay_months(m.group("delay"))
    return None


# ----------------------------------------------------------------- the grid


@dataclass(frozen=True)
class Grid:
    """Delays (texts) x multipliers of one base amount received now."""

    base: float
    delays: tuple[str, ...]
    multipliers: tuple[float, ...]

    def questions(self) -> tuple[list[str], np.ndarray, pd.DataFrame]:
        """Texts (index 0 = the amount now), pairs (now, later) and one row per pair.

        Rows carry the delay in months and the multiplier as the texts state it (the
        later amount is rounded to whole dollars).
        """
        now = now_text(self.base)
        texts, rows = [now], []
        for d in self.delays:
            for m in self.multipliers:
                later = later_text(self.base * m, d)
                amount, months = parse_payment(later) or (float("nan"), float("nan"))
                texts.append(later)
                rows.append({"delay": d, "months": months, "later_amount": amount})
        if len(set(texts)) != len(texts):
            raise ExperimentError(
                "time-discounting: the grid produces duplicate payments (two multipliers "
                "round to the same dollar amount, or a delay is listed twice)"
            )
        frame = pd.DataFrame(rows)
        frame["multiplier"] = frame["later_amount"] / self.base
        pairs = np.column_stack([np.zeros(len(rows), dtype=np.int64), np.arange(1, len(texts))])
        return texts, pairs, frame


def _float_list(raw: str, key: str) -> list[float]:
    try:
        return [float(v) for v in raw.split(",") if v.strip()]
    except ValueError:
        raise ExperimentError(f"--param {key}={raw!r}: expected comma-separated numbers") from None


def grid_for(ctx: ExperimentContext) -> Grid:
    """The grid of this run: the dataset's (quick or full), or `--param delays/multipliers`."""
    data = _dataset()
    prefix = "quick_" if ctx.quick else ""
    given = read_params("time-discounting", ctx.params).base_amount  # dollars, >= 1
    base = float(data["base_amount"]) if given is None else given
    delays = [str(v) for v in data[f"{prefix}delays"]]
    multipliers = [float(v) for v in data[f"{prefix}multipliers"]]
    if "delays" in ctx.params:
        delays = [d.strip() for d in ctx.params["delays"].split(",") if d.strip()]
    if "multipliers" in ctx.params:
        multipliers = _float_list(ctx.params["multipliers"], "multipliers")
    for d in delays:
        if delay_months(d) <= 0:
            raise ExperimentError(f"--param delays: {d!r} must be a positive delay")
    if len({delay_months(d) for d in delays}) < 3:
        raise ExperimentError(
            f"time-discounting: needs at least 3 distinct delays to compare curves, got {delays}"
        )
    if len(set(multipliers)) < 3 or min(multipliers) <= 0:
        raise ExperimentError(
            f"time-discounting: needs at least 3 distinct positive multipliers, got {multipliers}"
        )
    return Grid(base, tuple(delays), tuple(sorted(set(multipliers))))


# ----------------------------------------------------------------- does the amount matter


def _row_corr(x: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Pearson correlation of x with each row (along the last axis); 0 for a constant row
    (a delay whose answers are all equal shows no effect of the amount)."""
    return np.nan_to_num(stats.PAIRED["pearson"](x, rows, axis=-1), nan=0.0)


def multiplier_effect(choices: pd.DataFrame, seed: int, n_perm: int = 1000) -> dict[str, float]:
    """Mean over delays of the within-delay Spearman rho of P(later) with the multiplier.

    Within each delay, a model that weighs the amount takes the later payment more often
    as it grows. Interval: bootstrap over delays; p-value: permutation of the answers
    within each delay. A delay whose answers are all equal counts as rho 0.
    """
    table = choices.pivot_table(index="months", columns="multiplier", values="p_later")
    ranks = rankdata(table.to_numpy(float), axis=1)
    x = np.arange(ranks.shape[1], dtype=float)
    rho = _row_corr(x, ranks)
    stat = bootstrap_mean(rho, seed)
    # answers permuted within each delay (a stratified permutation test of the mean over
    # delays), which scipy.stats.permutation_test's schemes do not cover
    rng = np.random.default_rng(stable_seed("discount-perm", seed))
    perms = rng.permuted(np.broadcast_to(ranks, (n_perm, *ranks.shape)), axis=2)
    null = _row_corr(x, perms).mean(axis=1)
    p_value = (1 + np.sum(null >= stat["value"] - 1e-12)) / (1 + n_perm)
    return {**stat, "p_value": float(p_value)}


# ----------------------------------------------------------------- indifference points


def crossing(log_m: np.ndarray, p_later: np.ndarray) -> float:
    """ln m where the monotone choice curve crosses 1/2 (+-inf: outside the grid).

    `log_m` must be sorted. The curve is the isotonic (non-decreasing) regression of
    P(later) on ln m; the crossing is interpolated on the probit scale, with a monotone
    cubic (PCHIP) through every grid point, between the last point below 1/2 and the
    first above it (the middle of a plateau at exactly 1/2).
    -inf: the later payment is preferred everywhere (indifference below the smallest
    multiplier); +inf: never preferred (above the largest).
    """
    fit = isotonic_regression(p_later, increasing=True).x
    below = np.flatnonzero(fit < 0.5)
    above = np.flatnonzero(fit > 0.5)
    if len(above) == 0:
        return float("inf") if len(below) else float(np.mean(log_m))
    if len(below) == 0:
        return float("-inf") if above[0] == 0 else float(np.mean(log_m[: above[0]]))
    lo, hi = below[-1], above[0]
    if hi - lo > 1:  # a plateau at exactly 1/2
        return float(np.mean(log_m[lo + 1 : hi]))
    q = ndtri(np.clip(fit, _P_CLIP, 1 - _P_CLIP))
    keep = np.r_[True, np.diff(log_m) > 0]  # resampled grids repeat points
    if keep.sum() < 3:
        q_lo, q_hi = q[lo], q[hi]
        return float(log_m[lo] + (0.0 - q_lo) * (log_m[hi] - log_m[lo]) / (q_hi - q_lo))
    curve = PchipInterpolator(log_m[keep], q[keep])
    return float(brentq(curve, log_m[lo], log_m[hi]))


def _delay_draws(log_m: np.ndarray, p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap crossings of one delay: residual bootstrap around its monotone curve.

    The grid stays fixed; each replicate adds the curve's residuals, resampled with
    replacement, to the fitted curve (clipped to [0, 1]) and reads the crossing again.
    Noise-free choices give a zero-width interval; noisy ones a wide one.
    """
    fit = isotonic_regression(p, increasing=True).x
    resid = p - fit
    if np.all(np.abs(resid) < 1e-12):  # noise-free: every replicate is the same curve
        return np.full(N_BOOT, crossing(log_m, p))
    # a residual bootstrap around a fitted curve, read again per draw: not a resampling
    # of observations, so scipy.stats.bootstrap does not apply
    draws = np.empty(N_BOOT)
    for b in range(N_BOOT):
        p_star = np.clip(fit + rng.choice(resid, size=len(resid)), 0.0, 1.0)
        draws[b] = crossing(log_m, p_star)
    return draws


def _interval(draws: np.ndarray) -> tuple[float, float]:
    """Percentile interval that keeps infinite draws (order statistics, no interpolation)."""
    s = np.sort(draws)
    tail = (1 - LEVEL) / 2
    lo = s[int(np.floor(tail * (len(s) - 1)))]
    hi = s[int(np.ceil((1 - tail) * (len(s) - 1)))]
    return float(lo), float(hi)


def indifference_points(choices: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """One row per delay: ln m*, its interval and status; plus the bootstrap draws.

    `choices` has columns delay, months, multiplier, p_later. Draws: (delays, N_BOOT).
    """
    rows, draws = [], []
    for (months, delay), group in choices.groupby(["months", "delay"], sort=True):
        g = group.sort_values("multiplier")
        log_m = np.log(g["multiplier"].to_numpy(float))
        p = g["p_later"].to_numpy(float)
        z = crossing(log_m, p)
        rng = np.random.default_rng(stable_seed("discount-boot", seed, delay))
        d = _delay_draws(log_m, p, rng)
        lo, hi = _interval(d)
        status = "inside" if np.isfinite(z) else ("above grid" if z > 0 else "below grid")
        rows.append(
            {
                "delay": delay,
                "months": float(months),
                "status": status,
                "log_m": z,
                "log_m_low": lo,
                "log_m_high": hi,
            }
        )
        draws.append(d)
    return pd.DataFrame(rows), np.array(draws)


# ----------------------------------------------------------------- curves


def fit_exponential(t: np.ndarray, log_d: np.ndarray) -> float:
    """Least-squares ln delta for ln d = t ln delta (returns delta)."""
    return float(np.exp(np.dot(t, log_d) / np.dot(t, t)))


def fit_hyperbolic(t: np.ndarray, log_d: np.ndarray) -> float:
    """Least-squares k for ln d = -ln(1 + k t), k > -1 / max(t)."""
    lo = -1.0 / t.max() + 1e-9

    def sse(k: float) -> float:
        return float(np.sum((log_d + np.log1p(k * t)) ** 2))

    res = minimize_scalar(sse, bounds=(lo, 1e3), method="bounded", options={"xatol": 1e-10})
    return float(res.x)


CURVES = ("exponential", "hyperbolic")


def predict(kind: str, param: float, t: np.ndarray) -> np.ndarray:
    """ln d(t) of a fitted curve."""
    if kind == "exponential":
        return t * np.log(param)
    return -np.log1p(param * t)


def _fit(kind: str, t: np.ndarray, log_d: np.ndarray) -> float:
    return fit_exponential(t, log_d) if kind == "exponential" else fit_hyperbolic(t, log_d)


def heldout_errors(kind: str, t: np.ndarray, log_d: np.ndarray) -> np.ndarray:
    """Leave-one-delay-out error of each ln d (fit on the other delays, predict this one)."""
    errors = np.empty(len(t))
    for held in np.unique(t):
        out = t == held
        param = _fit(kind, t[~out], log_d[~out])
        errors[out] = log_d[out] - predict(kind, param, t[out])
    return errors


def curve_quality(kind: str, t: np.ndarray, log_d: np.ndarray) -> dict[str, float]:
    """Parameter, R^2, AIC and leave-one-delay-out RMSE of one curve on ln d."""
    param = _fit(kind, t, log_d)
    resid = log_d - predict(kind, param, t)
    sse = float(resid @ resid)
    sst = float(((log_d - log_d.mean()) ** 2).sum())
    n = len(t)
    return {
        "param": param,
        "r2": 1 - sse / sst if sst > 0 else float("nan"),
        "aic": float(n * np.log(max(sse / n, 1e-300)) + 2),
        "cv_rmse": float(np.sqrt(np.mean(heldout_errors(kind, t, log_d) ** 2))),
    }


def _signed_rank_cdf(n: int) -> np.ndarray:
    """P(W <= w) for w = 0 .. n(n+1)/2, W the Wilcoxon signed-rank statistic under H0."""
    counts = np.zeros(n * (n + 1) // 2 + 1)
    counts[0] = 1.0
    for k in range(1, n + 1):
        counts[k:] = counts[k:] + counts[:-k].copy()
    return np.cumsum(counts) / 2.0**n


def hodges_lehmann(x: np.ndarray, level: float = LEVEL) -> tuple[float, float, float]:
    """Median of the Walsh averages and its distribution-free interval.

    The interval is the one that inverts the two-sided Wilcoxon signed-rank test: it
    drops the C smallest and C largest Walsh averages, C the largest count with
    P(W <= C - 1) <= (1 - level) / 2. With too few values for the level (n < 5 at 90%)
    the interval is (-inf, inf).
    """
    x = np.asarray(x, dtype=float)
    i, j = np.triu_indices(len(x))
    walsh = np.sort((x[i] + x[j]) / 2)
    cdf = _signed_rank_cdf(len(x))
    c = int(np.sum(cdf <= (1 - level) / 2))  # cdf[w] <= tail for w = 0 .. c - 1
    if c == 0:
        return float(np.median(walsh)), float("-inf"), float("inf")
    return float(np.median(walsh)), float(walsh[c - 1]), float(walsh[len(walsh) - c])


def compare_curves(t: np.ndarray, log_d: np.ndarray) -> dict[str, Any]:
    """The verdict: per-delay held-out squared error, exponential minus hyperbolic.

    The statistic is the Hodges-Lehmann location of the differences over delays with
    the 90% interval of the Wilcoxon signed-rank test. The margin: a curve wins when
    that interval excludes 0 on its side *and* the other curve's held-out RMSE is at
    least RMSE_MARGIN times its own; otherwise "undecided" (always so with fewer than
    5 delays).
    """
    err = {kind: heldout_errors(kind, t, log_d) for kind in CURVES}
    diff = err["exponential"] ** 2 - err["hyperbolic"] ** 2
    value, lo, hi = hodges_lehmann(diff)
    rmse = {kind: float(np.sqrt(np.mean(e**2))) for kind, e in err.items()}
    ratio = max(rmse.values()) / max(min(rmse.values()), 1e-12)
    verdict = "undecided"
    if ratio >= RMSE_MARGIN:
        verdict = "hyperbolic" if lo > 0 else ("exponential" if hi < 0 else "undecided")
    return {
        "verdict": verdict,
        "value": value,
        "ci_low": lo,
        "ci_high": hi,
        "rmse_ratio": ratio,
        "mean": float(diff.mean()),
        "share_hyperbolic_better": float(np.mean(diff > 0)),
        "n_delays": len(np.unique(t)),
    }


def _bootstrap_params(
    t: np.ndarray, draws: np.ndarray, fallback: np.ndarray, seed: int
) -> dict[str, np.ndarray]:
    """delta and k refitted on resampled delays, each at one of its bootstrap crossings."""
    # delays redrawn and both curves refitted per draw: scipy.stats.bootstrap does not refit
    draws_idx = stats.resample_indices(len(t), draws.shape[1], stable_seed("discount-curves", seed))
    out: dict[str, list[float]] = {"delta": [], "k": []}
    for b, idx in enumerate(draws_idx):
        log_m = np.where(np.isfinite(draws[idx, b]), draws[idx, b], fallback[idx])
        if len(np.unique(t[idx])) < 2:
            continue
        out["delta"].append(fit_exponential(t[idx], -log_m))
        out["k"].append(fit_hyperbolic(t[idx], -log_m))
    return {key: np.array(v) for key, v in out.items()}


def _pct(values: np.ndarray) -> tuple[float | None, float | None]:
    if len(values) < 10:
        return None, None
    lo, hi, _ = stats.percentile_interval(values, LEVEL)
    return lo, hi


# ----------------------------------------------------------------- the analysis


def analyse(choices: pd.DataFrame, seed: int) -> dict[str, Any]:
    """Indifference points, both curves, the verdict and intervals from the choice table.

    `choices`: one row per (delay, multiplier) with columns delay, months, multiplier,
    p_later. Pure: no model, no files.
    """
    effect = multiplier_effect(choices, seed)
    head = {
        "multiplier_rho": headline_from(
            effect, "Spearman rho of P(later) with the multiplier, mean over delays"
        )
    }
    result: dict[str, Any] = {"multiplier_effect": effect, "headline": head}
    if not (effect["value"] > 0 and effect["p_value"] < EFFECT_ALPHA):
        result["reading"] = (
            "No discounting curve fits: the model does not reliably take the later payment "
            f"more often as it grows (Spearman rho {effect['value']:.3f}, 90% interval "
            f"{effect['ci_low']:.3f} to {effect['ci_high']:.3f}, one-sided permutation p "
            f"{effect['p_value']:.3g}), so no indifference point can be read off its choices."
        )
        result["better_fit"] = "undecided"
        result["tables"] = {"choices": choices.to_dict("records")}
        return result

    points, draws = indifference_points(choices, seed)
    inside = points["status"].to_numpy() == "inside"
    result["censored"] = {
        "above_grid": int((points["status"] == "above grid").sum()),
        "below_grid": int((points["status"] == "below grid").sum()),
    }
    if inside.sum() < 3:
        result["reading"] = (
            f"No discounting curve fits: only {int(inside.sum())} of {len(points)} delays have "
            "an indifference point inside the multiplier grid "
            f"({result['censored']['above_grid']} never choose the later payment in half the "
            f"answers or more, even at {choices['multiplier'].max():g}x; "
            f"{result['censored']['below_grid']} always do, even at "
            f"{choices['multiplier'].min():g}x); widen --param multipliers."
        )
        result["better_fit"] = "undecided"
        result["tables"] = {
            "delays": _delay_rows(points, {}),
            "choices": choices.to_dict("records"),
        }
        return result

    t = points.loc[inside, "months"].to_numpy(float)
    log_m = points.loc[inside, "log_m"].to_numpy(float)
    log_d = -log_m
    curves = {kind: curve_quality(kind, t, log_d) for kind in CURVES}
    verdict = compare_curves(t, log_d)
    boot = _bootstrap_params(t, draws[inside], log_m, seed)
    k_lo, k_hi = _pct(boot["k"])
    d_lo, d_hi = _pct(boot["delta"])
    head["k"] = headline(curves["hyperbolic"]["param"], k_lo, k_hi, "hyperbolic k (per month)")
    head["delta"] = headline(
        curves["exponential"]["param"], d_lo, d_hi, "exponential delta (per month)"
    )
    head["heldout_difference"] = headline(
        verdict["value"],
        verdict["ci_low"],
        verdict["ci_high"],
        "held-out squared error of ln d, exponential minus hyperbolic, Hodges-Lehmann over delays "
        "(> 0 favours hyperbolic)",
    )
    result.update(
        better_fit=verdict["verdict"],
        verdict=verdict,
        curves=curves,
        reading=_reading(curves, verdict, head, points),
        tables={
            "curves": [{"curve": kind, **q} for kind, q in curves.items()],
            "delays": _delay_rows(points, curves),
            "choices": choices.to_dict("records"),
        },
    )
    return result


def _delay_rows(points: pd.DataFrame, curves: dict) -> list[dict]:
    rows = []
    for _, r in points.iterrows():
        row = {
            "delay": r["delay"],
            "months": r["months"],
            "status": r["status"],
            "indifference_multiplier": _exp_or_none(r["log_m"]),
            "ci_low": _exp_or_none(r["log_m_low"]),
            "ci_high": _exp_or_none(r["log_m_high"]),
            "discount_factor": _exp_or_none(-r["log_m"]),
        }
        for kind, q in curves.items():
            row[kind] = float(np.exp(predict(kind, q["param"], np.array([r["months"]]))[0]))
        rows.append(row)
    return rows


def _exp_or_none(x: float) -> float | None:
    """exp(x), or None for an infinite bound (outside the grid)."""
    return float(np.exp(x)) if np.isfinite(x) else None


def _reading(curves: dict, verdict: dict, head: dict, points: pd.DataFrame) -> str:
    k, delta = head["k"], head["delta"]
    n_in = int((points["status"] == "inside").sum())
    if verdict["verdict"] == "undecided":
        text = "Neither curve predicts held-out delays reliably better"
    else:
        text = f"The {verdict['verdict']} curve predicts held-out delays better"
    text += (
        f" (leave-one-delay-out RMSE on ln d {curves['hyperbolic']['cv_rmse']:.3f} hyperbolic "
        f"vs {curves['exponential']['cv_rmse']:.3f} exponential; squared-error difference "
        f"{verdict['value']:.3g}, 90% interval {verdict['ci_low']:.3g} to "
        f"{verdict['ci_high']:.3g}; {n_in} of {len(points)} delays have an indifference point "
        f"inside the grid). Hyperbolic k = {k['value']:.3g} per month"
    )
    if k["value"] > 0:
        text += f" (money is worth half after {1 / k['value']:.3g} months)"
    text += (
        f"; exponential delta = {delta['value']:.4g} per month ({delta['value'] ** 12:.3g} a year)."
    )
    if k["value"] < 0 or delta["value"] > 1:
        text += " The model values later money more than money now (negative discounting)."
    return text


def _chart(ctx: ExperimentContext, choices: pd.DataFrame, result: dict) -> str:
    from matplotlib.figure import Figure

    from valuescope.report.plots import styled

    name = "time-discounting_curves.svg"
    table = choices.pivot_table(index="months", columns="multiplier", values="p_later")
    with styled():
        fig = Figure(figsize=(10, 4))
        ax_grid, ax_curve = fig.subplots(1, 2)
        mesh = ax_grid.pcolormesh(
            np.arange(table.shape[1] + 1), np.arange(table.shape[0] + 1), table.to_numpy(),
            cmap="RdBu", vmin=0, vmax=1,
        )  # fmt: skip
        fig.colorbar(mesh, ax=ax_grid, label="P(later payment chosen)")
        ax_grid.set_xticks(np.arange(table.shape[1]) + 0.5, [f"{m:g}" for m in table.columns])
        ax_grid.set_yticks(np.arange(table.shape[0]) + 0.5, [f"{t:g}" for t in table.index])
        ax_grid.tick_params(axis="x", labelrotation=90, labelsize=6)
        ax_grid.tick_params(axis="y", labelsize=6)
        ax_grid.set_xlabel("multiplier (later / now)")
        ax_grid.set_ylabel("delay (months)")
        ax_grid.set_title("Choices")
        rows = [r for r in result["tables"]["delays"] if r["status"] == "inside"]
        t = np.array([r["months"] for r in rows])
        d = np.array([r["discount_factor"] for r in rows])
        low = np.array([1 / r["ci_high"] if r["ci_high"] else 0.0 for r in rows])
        high = np.array([1 / r["ci_low"] if r["ci_low"] else np.nan for r in rows])
        high = np.where(np.isfinite(high), high, d)
        yerr = [np.clip(d - low, 0, None), np.clip(high - d, 0, None)]
        ax_curve.errorbar(t, d, yerr=yerr, fmt="o", ms=3, color="#6b7280",
                          alpha=0.8, label="1 / indifference multiplier")  # fmt: skip
        grid = np.linspace(0, max(t.max(), 1.0), 200)
        for kind, color in (("exponential", "#2563eb"), ("hyperbolic", "#dc2626")):
            q = result["curves"][kind]
            ax_curve.plot(grid, np.exp(predict(kind, q["param"], grid)), color=color,
                          label=f"{kind} (held-out RMSE {q['cv_rmse']:.3f})")  # fmt: skip
        ax_curve.set_xlabel("delay (months)")
        ax_curve.set_ylabel("discount factor")
        ax_curve.set_title(f"Discount curve: {result['better_fit']}")
        ax_curve.legend(fontsize=8)
        fig.tight_layout()
        atomic_write(ctx.out / name, lambda tmp: fig.savefig(tmp, format="svg"))
    return name


def run(ctx: ExperimentContext) -> dict[str, Any]:
    grid = grid_for(ctx)
    texts, pairs, choices = grid.questions()
    asked = ask_pairs(ctx, "choices", texts, pairs)
    choices["p_later"] = 1.0 - asked.answers.p  # pairs are (now, later)
    write_csv(ctx.out / "choices" / "choices.csv", choices)
    result = analyse(choices, ctx.seed)
    result["design"] = {
        "base_amount": grid.base,
        "n_delays": len(grid.delays),
        "n_multipliers": len(grid.multipliers),
        "max_months": float(choices["months"].max()),
        "multiplier_range": [min(grid.multipliers), max(grid.multipliers)],
        **asked.summary(),
    }
    result["figures"] = [_chart(ctx, choices, result)] if "curves" in result else []
    result["run_dir"] = str(ctx.out / "choices")
    return result


EXPERIMENT = Experiment(
    name="time-discounting",
    title="Time discounting",
    summary="money now vs later: indifference points per delay; exponential or hyperbolic",
    run=run,
)
