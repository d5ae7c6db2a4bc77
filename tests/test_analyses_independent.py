"""Analyses and control against expectations the test builds itself.

Each target here is computed by test code (scipy's curve_fit, a soft label built by
hand, the planted agent's own utilities and beliefs), never by the function under test,
and each planted case is one the wrong method gets wrong (docs/testing.md lists the
bugs these tests were checked against).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import curve_fit
from scipy.special import logit, ndtr

from valuescope.agents.structured import ExpectedUtilityAgent
from valuescope.control import sample_citizens
from valuescope.control.assembly_run import labels_table
from valuescope.control.deliberation import design_pairs, run_assembly
from valuescope.control.train import build_examples
from valuescope.elicit import ResponseCache, get_template
from valuescope.experiments import ExperimentContext, get_experiment
from valuescope.experiments.expected_utility import event_probabilities, lotteries
from valuescope.experiments.time_discounting import (
    analyse,
    curve_quality,
    fit_exponential,
    fit_hyperbolic,
)
from valuescope.models import get_backend
from valuescope.models.registry import SIM_AGENTS as _AGENTS

# ---- time discounting: least squares, leave-one-delay-out, the better-fit rule ---------

DELAYS = np.array([1.0, 3.0, 6.0, 12.0, 24.0, 60.0])


def exponential(t, delta):
    return t * np.log(delta)


def hyperbolic(t, k):
    return -np.log1p(k * t)


def noisy_log_d(curve, param: float, seed: int, per_delay: int = 3) -> tuple:
    rng = np.random.default_rng(seed)
    t = np.repeat(DELAYS, per_delay)
    return t, curve(t, param) + rng.normal(scale=0.15, size=t.size)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exponential_delta_is_the_least_squares_fit(seed):
    t, log_d = noisy_log_d(hyperbolic, 0.08, seed)  # off-model data: estimators disagree
    (want,), _ = curve_fit(exponential, t, log_d, p0=[0.9], bounds=(1e-6, 10))
    assert fit_exponential(t, log_d) == pytest.approx(want, rel=1e-6)
    # a different estimator (the mean per-delay rate) lands elsewhere on these data
    assert np.exp(np.mean(log_d / t)) != pytest.approx(want, rel=1e-3)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hyperbolic_k_is_the_least_squares_fit(seed):
    t, log_d = noisy_log_d(exponential, 0.93, seed)
    (want,), _ = curve_fit(hyperbolic, t, log_d, p0=[0.1], bounds=(-1 / t.max() + 1e-6, 1e3))
    assert fit_hyperbolic(t, log_d) == pytest.approx(want, rel=1e-4)


@pytest.mark.parametrize("kind", ["exponential", "hyperbolic"])
def test_curve_quality_matches_a_hand_made_leave_one_delay_out(kind):
    curve, p0, bounds = {
        "exponential": (exponential, 0.9, (1e-6, 10)),
        "hyperbolic": (hyperbolic, 0.1, (-1 / 60 + 1e-6, 1e3)),
    }[kind]
    # data from the other curve, so that every fit leaves residuals
    if kind == "exponential":
        t, log_d = noisy_log_d(hyperbolic, 0.08, 5)
    else:
        t, log_d = noisy_log_d(exponential, 0.93, 5)

    def fit(tt, yy):
        return curve_fit(curve, tt, yy, p0=[p0], bounds=bounds)[0][0]

    param = fit(t, log_d)
    resid = log_d - curve(t, param)
    errors = []
    for held in DELAYS:
        out = t == held
        errors.append(log_d[out] - curve(t[out], fit(t[~out], log_d[~out])))
    want_cv = np.sqrt(np.mean(np.concatenate(errors) ** 2))
    got = curve_quality(kind, t, log_d)
    assert got["param"] == pytest.approx(param, rel=1e-4)
    assert got["cv_rmse"] == pytest.approx(want_cv, rel=1e-4)
    # held-out error is larger than the in-sample one, which a full-fit "LOO" would report
    assert got["cv_rmse"] > np.sqrt(np.mean(resid**2)) * 1.01
    sst = ((log_d - log_d.mean()) ** 2).sum()
    assert got["r2"] == pytest.approx(1 - (resid @ resid) / sst, rel=1e-4)
    n = len(t)
    assert got["aic"] == pytest.approx(n * np.log((resid @ resid) / n) + 2, rel=1e-4)


def choices_frame(log_d_of) -> pd.DataFrame:
    """P(later) of a planted discounter with sqrt money utility, exactly.

    The later payment m x $1,000 at delay t is worth sqrt(m d(t)) against sqrt(1) now.
    """
    multipliers = np.geomspace(0.5, 30, 30)
    t = np.repeat(DELAYS, len(multipliers))
    m = np.tile(multipliers, len(DELAYS))
    p_later = ndtr(2.0 * (np.sqrt(m * np.exp(log_d_of(t))) - 1.0))
    return pd.DataFrame(
        {"delay": [f"{x:g} months" for x in t], "months": t, "multiplier": m, "p_later": p_later}
    )


@pytest.mark.parametrize(
    ("planted", "curve", "param"),
    [("exponential", exponential, 0.95), ("hyperbolic", hyperbolic, 0.1)],
)
def test_better_fit_names_the_planted_curve(planted, curve, param):
    result = analyse(choices_frame(lambda t: curve(t, param)), 0)
    assert result["better_fit"] == planted
    other = "hyperbolic" if planted == "exponential" else "exponential"
    assert result["curves"][planted]["aic"] < result["curves"][other]["aic"]
    assert result["curves"][planted]["param"] == pytest.approx(param, rel=1e-2)
    # the indifference multiplier at each delay is 1 / d(t), whatever the money utility
    got = [r["indifference_multiplier"] for r in result["tables"]["delays"]]
    assert got == pytest.approx(np.exp(-curve(DELAYS, param)), rel=0.02)


# ---- expected utility: the model's own probabilities -----------------------------------


def _belief(sub: str) -> float:
    """What the planted agent believes of a sub-outcome: its event's base rates reversed."""
    lot = next(x for x in lotteries() if sub in [t for _, t in x["branches"]])
    rates = [p for p, _ in lot["branches"]]
    return rates[::-1][[t for _, t in lot["branches"]].index(sub)]


class OwnBeliefAgent(ExpectedUtilityAgent):
    """An expected-utility maximiser whose probabilities are its own, not the dataset's."""

    def structure(self, text):
        lot = next((x for x in lotteries() if x["text"] == text), None)
        if lot is None or lot["event"] is None:
            return super().structure(text)
        return [(_belief(t), t) for _, t in lot["branches"]]

    def probability(self, event, rng):
        return round(100 * _belief(event), 1) if event in event_probabilities() else 50.0


def test_expected_utility_uses_the_models_own_probabilities(tmp_path, monkeypatch):
    monkeypatch.setitem(_AGENTS, "own-belief", OwnBeliefAgent)
    ctx = ExperimentContext(
        model="sim/own-belief",
        out=tmp_path,
        quick=True,
        run_options={"mode": "logprob", "bootstrap": 0},
    )
    result = get_experiment("expected-utility").run(ctx)
    utilities = pd.read_csv(tmp_path / "lotteries" / "utilities.csv")
    u = dict(zip(utilities["outcome"], utilities["mean"]))
    implicit = [r for r in result["tables"]["lotteries"] if r["kind"] == "implicit"]
    assert len(implicit) >= 3
    by_id = {lot["id"]: lot for lot in lotteries()}
    for row in implicit:
        lot = by_id[row["id"]]
        want = sum(_belief(t) * u[t] for _, t in lot["branches"])
        assert row["expected_utility"] == pytest.approx(want, abs=1e-9)
    for sub in result["tables"]["sub_outcomes"]:
        assert sub["model_probability"] == pytest.approx(_belief(sub["outcome"]))
    assert result["headline"]["corr_implicit"]["value"] > 0.9
    assert result["headline"]["mae_implicit"]["value"] < 0.25


# ---- control: the assembly's final answer and the training targets ----------------------


def test_the_assembly_answer_is_the_last_deliberation_round(tmp_path):
    outcomes = [f"Outcome number {i} happens." for i in range(8)]
    personas = [c.persona for c in sample_citizens(7, seed=1)]
    design = design_pairs(["t"] * len(outcomes), 14, seed=2)
    pairs = design.pairs
    conformity = 1.5
    agent = get_backend(f"sim/citizen?conformity={conformity}")
    with ResponseCache(tmp_path / "c.sqlite") as cache:
        votes = run_assembly(agent, personas, outcomes, pairs, cache, rounds=2)
    # expected, from the planted utilities: round 0 votes, then every citizen pulled by
    # conformity * logit(shown share); the prompt shows the share as a whole percent
    truth = agent.citizen_truth(personas, outcomes).pivot(index="citizen", columns="id")["mean"]
    u = truth.to_numpy()
    d = (u[:, pairs[:, 0]] - u[:, pairs[:, 1]]) / np.sqrt(2)
    first = (ndtr(d) > 0.5).mean(axis=0)
    shown = np.clip(np.array([float(f"{100 * s:.0f}") / 100 for s in first]), 0.02, 0.98)
    second_pref = ndtr(d + conformity * logit(shown))
    want = np.where(second_pref > 0.5, 1.0, np.where(second_pref < 0.5, 0.0, 0.5)).mean(axis=0)
    assert not np.allclose(want, first), "the planted pull should move some votes"
    np.testing.assert_allclose(votes.shares[0], first)
    np.testing.assert_allclose(votes.final, want)
    table = labels_table(design, votes, outcomes, ["t"] * len(outcomes))
    np.testing.assert_allclose(table["p_assembly"], want)
    np.testing.assert_allclose(table["share_round0"], first)


class TextTokenizer:
    """The one method build_examples needs from a backend: messages -> token ids."""

    def encode(self, messages) -> list[int]:
        return [ord(ch) for _, text in messages for ch in text]


def test_training_targets_flip_with_the_order():
    labels = pd.DataFrame(
        {
            "pair": [0, 1, 2],
            "outcome_a": ["apples", "bread", "cheese"],
            "outcome_b": ["dates", "eggs", "figs"],
            "split": ["train", "train", "heldout"],
            "p_assembly": [0.8, 0.25, 0.6],
        }
    )
    tok = TextTokenizer()
    examples = build_examples(tok, labels, "default")
    tmpl = get_template("default")
    # built by hand: the a-first prompt targets p, the b-first prompt targets 1 - p
    want = [
        (tok.encode(tmpl.render("apples", "dates")), 0.8, 0, 0),
        (tok.encode(tmpl.render("dates", "apples")), 0.2, 0, 1),
        (tok.encode(tmpl.render("bread", "eggs")), 0.25, 1, 0),
        (tok.encode(tmpl.render("eggs", "bread")), 0.75, 1, 1),
    ]
    got = [(e.ids, e.q, e.pair, e.order) for e in examples]
    assert len(got) == len(want)
    for (ids, q, pair, order), (w_ids, w_q, w_pair, w_order) in zip(got, want, strict=True):
        assert ids == w_ids
        assert q == pytest.approx(w_q)
        assert (pair, order) == (w_pair, w_order)
    both = build_examples(tok, labels, "default", ("train", "heldout"), persona="a farmer")
    assert len(both) == 6
    assert both[5].q == pytest.approx(0.4)
    assert both[5].ids == tok.encode(tmpl.render("figs", "cheese", "a farmer"))
