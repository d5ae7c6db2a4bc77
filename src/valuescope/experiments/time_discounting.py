"""Time discounting: how the model values money later against money now.

Outcomes "You receive $X today" over a range of X trace the utility of money now, fitted
as U = a ln X + b. For each delayed payment "$Y in t months" the present value is the
amount now with the same utility, PV = exp((U - b) / a), and the discount factor is
d = PV / Y. Two one-parameter curves are fitted to ln d by least squares:

    exponential  d(t) = delta ** t        (ln d = t ln delta)
    hyperbolic   d(t) = 1 / (1 + k t)     (ln d = -ln(1 + k t))

with t in months. Fit quality: R^2 on ln d, AIC (n ln(SSE / n) + 2; both curves have
one parameter, so the lower AIC is the lower SSE) and leave-one-delay-out RMSE.
Intervals: parametric bootstrap, redrawing every utility with the pipeline's
per-outcome standard error and refitting everything.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar

from valuescope.atomic import atomic_write
from valuescope.experiments._stats import headline, load_data, measure_options
from valuescope.experiments.base import Experiment, ExperimentContext, ExperimentError
from valuescope.experiments.exchange_rates import fit_line, shuffled, utility_se

N_BOOT = 500
LEVEL = 0.9
MONTHS = {"day": 12 / 365.25, "week": 12 / 52.18, "month": 1.0, "year": 12.0}
_DELAY_RE = re.compile(r"^(\d+(?:\.\d+)?) (day|week|month|year)s?$")


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


def _grid(ctx: ExperimentContext) -> tuple[list[float], list[float], list[str]]:
    data = _dataset()
    prefix = "quick_" if ctx.quick else ""
    now = [float(v) for v in data[f"{prefix}now_multipliers"]]
    later = [float(v) for v in data[f"{prefix}later_multipliers"]]
    delays = [str(v) for v in data[f"{prefix}delays"]]
    if "delays" in ctx.params:
        delays = [d.strip() for d in ctx.params["delays"].split(",") if d.strip()]
    for d in delays:
        if delay_months(d) <= 0:
            raise ExperimentError(f"--param delays: {d!r} must be a positive delay")
    if len({delay_months(d) for d in delays}) < 3:
        raise ExperimentError(
            f"time-discounting: needs at least 3 distinct delays to compare curves, got {delays}"
        )
    return now, later, delays


def run(ctx: ExperimentContext) -> dict[str, Any]:
    base = ctx.param("base_amount", float(_dataset()["base_amount"]))
    if base <= 0:
        raise ExperimentError(f"--param base_amount={base:g} must be positive")
    now, later, delays = _grid(ctx)
    outcomes = [{"text": now_text(base * m), "category": "now"} for m in now]
    outcomes += [
        {"text": later_text(base * m, d), "category": "later"} for d in delays for m in later
    ]
    texts = [o["text"] for o in outcomes]
    if len(set(texts)) != len(texts):
        raise ExperimentError("time-discounting: the grid produces duplicate payments")
    outcomes = shuffled(outcomes, ctx.seed)
    result = ctx.measure("payments", outcomes, **measure_options(ctx.quick, len(outcomes)))
    frame = result.utilities
    parsed = [parse_payment(t) for t in frame["outcome"]]
    frame = frame.assign(
        amount=[p[0] for p in parsed], months=[p[1] for p in parsed], se=utility_se(frame)
    )
    if np.ptp(frame["mean"].to_numpy(float)) < 1e-9:
        raise ExperimentError(
            "time-discounting: every payment got the same utility (the model is indifferent "
            "between all of them); there is nothing to discount"
        )
    return {**analyse(frame, ctx.seed, ctx), "run_dir": str(result.out)}


def _discounts(u: np.ndarray, amount: np.ndarray, months: np.ndarray) -> tuple:
    """Money-curve slope/intercept and ln d of each delayed payment."""
    now = months == 0
    a, b, _ = fit_line(np.log(amount[now]), u[now])
    later = ~now
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        log_pv = (u[later] - b) / a
    return a, b, log_pv - np.log(amount[later])


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


def _predict(kind: str, param: float, t: np.ndarray) -> np.ndarray:
    if kind == "exponential":
        return t * np.log(param)
    return -np.log1p(param * t)


def _fit(kind: str, t: np.ndarray, log_d: np.ndarray) -> float:
    return fit_exponential(t, log_d) if kind == "exponential" else fit_hyperbolic(t, log_d)


def curve_quality(kind: str, t: np.ndarray, log_d: np.ndarray) -> dict[str, float]:
    """Parameter, R^2, AIC and leave-one-delay-out RMSE of one curve on ln d."""
    param = _fit(kind, t, log_d)
    resid = log_d - _predict(kind, param, t)
    sse = float(resid @ resid)
    sst = float(((log_d - log_d.mean()) ** 2).sum())
    n = len(t)
    errors = []
    for held in np.unique(t):
        train = t != held
        p = _fit(kind, t[train], log_d[train])
        errors.append(log_d[~train] - _predict(kind, p, t[~train]))
    cv = float(np.sqrt(np.mean(np.concatenate(errors) ** 2)))
    return {
        "param": param,
        "r2": 1 - sse / sst if sst > 0 else float("nan"),
        "aic": n * np.log(max(sse, 1e-300) / n) + 2,
        "cv_rmse": cv,
    }


def analyse(frame: pd.DataFrame, seed: int, ctx: ExperimentContext) -> dict[str, Any]:
    """Money curve, discount factors, both curves and intervals from the utility table."""
    u = frame["mean"].to_numpy(float)
    amount = frame["amount"].to_numpy(float)
    months = frame["months"].to_numpy(float)
    se = frame["se"].to_numpy(float)
    t = months[months > 0]
    a, b, log_d = _discounts(u, amount, months)

    rng = np.random.default_rng(seed)
    tail = 100 * (1 - LEVEL) / 2
    boot = {"a": [], "delta": [], "k": [], "hyper_wins": []}
    # now-payments also carry the money line's residual variance (lack of fit)
    now = months == 0
    s2 = fit_line(np.log(amount[now]), u[now])[2]
    scale = np.where(now, np.sqrt(se**2 + s2), se)
    for _ in range(N_BOOT):
        u_star = u + rng.normal(size=u.shape) * scale
        a_s, _, ld = _discounts(u_star, amount, months)
        boot["a"].append(a_s)
        if a_s <= 0 or not np.all(np.isfinite(ld)):
            continue
        delta = fit_exponential(t, ld)
        k = fit_hyperbolic(t, ld)
        sse_e = np.sum((ld - _predict("exponential", delta, t)) ** 2)
        sse_h = np.sum((ld - _predict("hyperbolic", k, t)) ** 2)
        boot["delta"].append(delta)
        boot["k"].append(k)
        boot["hyper_wins"].append(float(sse_h < sse_e))
    a_lo, a_hi = np.percentile(boot["a"], [tail, 100 - tail])
    head = {
        "money_slope": headline(a, a_lo, a_hi, "utility slope on ln(amount now)"),
    }
    money_r2 = _r2(np.log(amount[now]), u[now])
    result: dict[str, Any] = {
        "money_curve": {"slope": a, "intercept": b, "r2": money_r2},
        "figures": [],
    }
    if not (a > 0 and a_lo > 0):
        result["headline"] = head
        result["reading"] = (
            "No discounting curve fits: the model's utilities do not reliably rise with the "
            f"amount of money received now (slope on ln amount {a:.3f}, 90% interval "
            f"{a_lo:.3f} to {a_hi:.3f}), so present values and discount factors are undefined."
        )
        result["tables"] = {"payments": _payment_rows(frame, None)}
        return result

    curves = {kind: curve_quality(kind, t, log_d) for kind in ("exponential", "hyperbolic")}
    delta_lo, delta_hi = _interval(boot["delta"], tail)
    k_lo, k_hi = _interval(boot["k"], tail)
    better = (
        "hyperbolic"
        if curves["hyperbolic"]["aic"] < curves["exponential"]["aic"]
        else ("exponential")
    )
    head["k"] = headline(curves["hyperbolic"]["param"], k_lo, k_hi, "hyperbolic k (per month)")
    head["delta"] = headline(
        curves["exponential"]["param"], delta_lo, delta_hi, "exponential delta (per month)"
    )
    head["delta_aic"] = headline(
        curves["exponential"]["aic"] - curves["hyperbolic"]["aic"],
        None,
        None,
        "AIC(exponential) - AIC(hyperbolic); > 0 favours hyperbolic",
    )
    share = float(np.mean(boot["hyper_wins"])) if boot["hyper_wins"] else None
    result.update(
        headline=head,
        better_fit=better,
        hyperbolic_wins_share=share,
        curves=curves,
        reading=_reading(curves, better, share, head),
        tables={
            "curves": [{"curve": kind, **q} for kind, q in curves.items()],
            "delays": _delay_rows(t, log_d, curves),
            "payments": _payment_rows(frame, log_d),
        },
    )
    result["figures"].append(_chart(ctx, t, log_d, curves))
    return result


def _interval(values: list[float], tail: float) -> tuple[float | None, float | None]:
    if len(values) < 10:
        return None, None
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return float(lo), float(hi)


def _r2(x: np.ndarray, y: np.ndarray) -> float:
    a, b, _ = fit_line(x, y)
    sst = float(((y - y.mean()) ** 2).sum())
    resid = y - (a * x + b)
    return 1 - float(resid @ resid) / sst if sst > 0 else float("nan")


def _delay_rows(t: np.ndarray, log_d: np.ndarray, curves: dict) -> list[dict]:
    rows = []
    for months in np.unique(t):
        sel = t == months
        row = {
            "months": float(months),
            "discount_factor": float(np.exp(log_d[sel].mean())),
            "n_payments": int(sel.sum()),
        }
        for kind, q in curves.items():
            row[kind] = float(np.exp(_predict(kind, q["param"], np.array([months]))[0]))
        rows.append(row)
    return rows


def _payment_rows(frame: pd.DataFrame, log_d: np.ndarray | None) -> list[dict]:
    """One row per payment; log_d holds the delayed payments' ln d in frame order."""
    delayed = frame.loc[frame["months"] > 0, "outcome"]
    factors = {} if log_d is None else dict(zip(delayed, np.exp(log_d), strict=True))
    rows = []
    for _, r in frame.sort_values(["months", "amount"], kind="stable").iterrows():
        factor = factors.get(r["outcome"])
        rows.append(
            {
                "payment": r["outcome"],
                "amount": float(r["amount"]),
                "months": float(r["months"]),
                "utility": float(r["mean"]),
                "discount_factor": None if factor is None else float(factor),
            }
        )
    return rows


def _reading(curves: dict, better: str, share: float | None, head: dict) -> str:
    k = head["k"]
    delta = head["delta"]
    half_life = 1 / k["value"] if k["value"] > 0 else None
    text = (
        f"The {better} curve fits the model's discount factors better "
        f"(R^2 {curves['hyperbolic']['r2']:.2f} hyperbolic vs "
        f"{curves['exponential']['r2']:.2f} exponential; leave-one-delay-out RMSE on ln d "
        f"{curves['hyperbolic']['cv_rmse']:.3f} vs {curves['exponential']['cv_rmse']:.3f}"
    )
    if share is not None:
        text += f"; hyperbolic wins in {100 * share:.0f}% of bootstrap replicates"
    text += f"). Hyperbolic k = {k['value']:.3g} per month"
    if half_life is not None:
        text += f" (money is worth half after {half_life:.3g} months)"
    text += (
        f"; exponential delta = {delta['value']:.4g} per month ({delta['value'] ** 12:.3g} a year)."
    )
    if k["value"] < 0 or delta["value"] > 1:
        text += " The model values later money more than money now (negative discounting)."
    return text


def _chart(ctx: ExperimentContext, t: np.ndarray, log_d: np.ndarray, curves: dict) -> str:
    from matplotlib.figure import Figure

    from valuescope.report.plots import styled

    name = "time-discounting_curves.svg"
    grid = np.linspace(0, t.max(), 200)
    with styled():
        fig = Figure(figsize=(6, 4))
        ax = fig.subplots()
        ax.scatter(t, np.exp(log_d), s=16, alpha=0.7, color="#6b7280", label="payments")
        for kind, color in (("exponential", "#2563eb"), ("hyperbolic", "#dc2626")):
            q = curves[kind]
            ax.plot(
                grid,
                np.exp(_predict(kind, q["param"], grid)),
                color=color,
                label=f"{kind} (R^2 {q['r2']:.2f})",
            )
        ax.set_xlabel("delay (months)")
        ax.set_ylabel("discount factor (present value / amount)")
        ax.set_title("Discount curve")
        ax.legend()
        fig.tight_layout()
        atomic_write(ctx.out / name, lambda tmp: fig.savefig(tmp, format="svg"))
    return name


EXPERIMENT = Experiment(
    name="time-discounting",
    title="Time discounting",
    summary="money now vs later: do exponential or hyperbolic discount curves fit better",
    run=run,
)
