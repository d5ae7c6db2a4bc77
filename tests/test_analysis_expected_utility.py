"""Expected utility (issue 18 item 2): statistics that can fail.

Planted agents that satisfy expected utility (`sim/eu`) and that violate it
(`sim/eu?probability_weighting=G` with G < 1, `sim/best-outcome`, `sim/thurstone`), an
agent with its own beliefs about the real events, and one whose probability replies
cannot be parsed. Quick sizes, logprob mode: each test takes a few seconds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from valuescope.agents.structured import ExpectedUtilityAgent
from valuescope.errors import ValuescopeError
from valuescope.experiments import ExperimentContext, get_experiment
from valuescope.experiments.expected_utility import (
    cluster_bootstrap,
    event_probabilities,
    lotteries,
    normalised,
    order_share,
    select,
    sensitivity,
)
from valuescope.models import get_backend
from valuescope.models.registry import SIM_AGENTS as _AGENTS

pytestmark = pytest.mark.usefixtures("no_sub_run_reports")  # conftest says why


def run(model: str, tmp_path: Path, **params: str) -> dict:
    ctx = ExperimentContext(
        model=model,
        out=tmp_path,
        quick=True,
        run_options={"mode": "logprob", "bootstrap": 0},
        params=params,
    )
    return get_experiment("expected-utility").run(ctx)


def covers(entry: dict, value: float) -> bool:
    return entry["ci_low"] <= value <= entry["ci_high"]


def planted_sensitivity(model: str) -> float:
    """The sensitivity of the agent's hidden utilities over the quick explicit lotteries."""
    agent = get_backend(model)
    chosen = [x for x in select(True) if x["kind"] == "explicit"]
    u = np.array([agent._utility(x["text"])[0] for x in chosen])
    eu = np.array([sum(p * agent._utility(t)[0] for p, t in x["branches"]) for x in chosen])
    eq = np.array([np.mean([agent._utility(t)[0] for _, t in x["branches"]]) for x in chosen])
    return sensitivity(u, eu, eq)


# ---- the dataset ---------------------------------------------------------------------


def test_dataset_sizes_at_least_the_papers():
    explicit = [x for x in lotteries() if x["kind"] == "explicit"]
    events = [x for x in lotteries() if x["kind"] == "implicit"]
    assert len(explicit) >= 100 and {len(x["branches"]) for x in explicit} == {2, 3}
    assert len(events) >= 20 and sum(len(x["branches"]) for x in events) >= 150
    assert {"weather", "sports", "elections", "markets"} <= {x["domain"] for x in events}
    probs = [p for x in explicit for p, _ in x["branches"]]
    assert min(probs) == pytest.approx(0.05) and max(probs) == pytest.approx(0.95)
    for lot in lotteries():
        assert sum(p for p, _ in lot["branches"]) == pytest.approx(1.0)
    texts = [t for x in events for _, t in x["branches"]]
    assert len(set(texts)) == len(texts) == len(event_probabilities())


def test_groups_share_outcomes_and_differ_in_probabilities():
    # within a group the equal-weight prediction is the same and EU differs, so the two
    # predictions are not collinear (the design the sensitivity needs)
    explicit = [x for x in lotteries() if x["kind"] == "explicit"]
    by_group: dict[str, list] = {}
    for lot in explicit:
        by_group.setdefault(lot["group"], []).append(lot)
    assert len(by_group) >= 40
    for members in by_group.values():
        assert len(members) == len(members[0]["branches"])  # 2 mirrored or 3 shifted
        assert len({tuple(sorted(t for _, t in m["branches"])) for m in members}) == 1
        assert len({tuple(p for p, _ in m["branches"]) for m in members}) == len(members)
        # across the group every outcome gets the same total probability: EU - EQ is
        # uncorrelated with anything that depends only on the outcomes (max, mean, ...)
        totals: dict[str, float] = {}
        for m in members:
            for p, t in m["branches"]:
                totals[t] = totals.get(t, 0.0) + p
        assert np.allclose(list(totals.values()), 1.0)


def test_quick_keeps_whole_groups():
    chosen = select(True)
    explicit = [x for x in chosen if x["kind"] == "explicit"]
    groups = {x["group"] for x in explicit}
    full = [x for x in lotteries() if x["kind"] == "explicit" and x["group"] in groups]
    assert len(full) == len(explicit) and 10 <= len(explicit) <= 25
    assert 3 <= sum(x["kind"] == "implicit" for x in chosen) <= 6


# ---- the statistics on known arrays --------------------------------------------------


@pytest.mark.parametrize("w", [0.0, 0.3, 1.0, -0.5])
def test_sensitivity_reads_the_mixing_weight(w):
    rng = np.random.default_rng(1)
    eq = rng.normal(size=40)
    eu = eq + rng.normal(scale=0.5, size=40)
    u = 0.3 + 2.0 * (w * eu + (1 - w) * eq)
    assert sensitivity(u, eu, eq) == pytest.approx(w, abs=1e-9)
    assert np.isnan(sensitivity(-u, eu, eq)) or w < 0  # falling with the outcomes: no weight


def test_order_share_counts_ties_half_and_skips_copies():
    u = np.array([3.0, 2.0, 1.0, 1.0])
    pred = np.array([1.0, 2.0, 0.0, 0.0])  # (0,1) wrong, (0,2) (0,3) (1,2) (1,3) right
    ids = np.arange(4)
    assert order_share(u, pred, ids) == pytest.approx(4 / 5)  # the tie in u is left out
    assert order_share(u, np.zeros(4), ids) == pytest.approx(0.5)
    # a resample holding one lottery twice has no pair to compare
    assert np.isnan(order_share(u[[0, 0]], pred[[0, 0]], ids[[0, 0]]))
    groups = np.array(["a", "a", "b", "b"])
    assert order_share(u, pred, ids, within=groups) == pytest.approx(0.0)


def test_cluster_bootstrap_resamples_groups():
    groups = np.repeat(np.arange(10), 2)
    x = np.repeat(np.arange(10.0), 2)
    stat = cluster_bootstrap(groups, lambda r: float(x[r].mean()), seed=0)
    assert stat["value"] == pytest.approx(4.5) and stat["ci_low"] < 4.5 < stat["ci_high"]
    assert stat["n_groups"] == 10 and stat["n_boot"] == 1000
    again = cluster_bootstrap(groups, lambda r: float(x[r].mean()), seed=0)
    assert again == stat  # seeded


def test_normalised_model_probabilities():
    branches = [(0.5, "a"), (0.3, "b"), (0.2, "c")]
    got = normalised(branches, {"a": 0.6, "b": 0.6, "c": 0.3})
    assert [t for _, t in got] == ["a", "b", "c"]
    assert [p for p, _ in got] == pytest.approx([0.4, 0.4, 0.2])
    assert normalised(branches, {"a": 0.6, "b": None, "c": 0.3}) is None
    assert normalised(branches, {"a": 0.0, "b": 0.0, "c": 0.0}) is None


# ---- planted agents ------------------------------------------------------------------


def test_expected_utility_agent_scores_one(tmp_path):
    result = run("sim/eu", tmp_path)
    h, ex = result["headline"], result["detail"]["explicit"]
    s = h["probability_sensitivity"]
    # fit noise in the base utilities attenuates it a little at quick size (seeds 0-3:
    # 0.90-1.09); the interval reaches 1 or nearly
    assert abs(s["value"] - 1) < 0.15 and s["ci_low"] > 0.8 and s["ci_high"] > 0.95
    assert h["corr_explicit"]["value"] > 0.95 and h["mae_explicit"]["value"] < 0.2
    assert h["order_share_explicit"]["value"] > 0.95
    assert ex["order_share_same_outcomes"]["value"] == 1.0  # probabilities decide
    assert h["corr_implicit"]["value"] > 0.95
    assert result["probability_elicitation"]["unparseable"] == 0


def test_probability_blind_agent_scores_zero_though_correlation_is_high(tmp_path):
    # gamma = 0: equal weights; the old headline (correlation) still looks good
    result = run("sim/eu?probability_weighting=0", tmp_path)
    h, ex = result["headline"], result["detail"]["explicit"]
    s = h["probability_sensitivity"]
    assert abs(s["value"]) < 0.1 and s["ci_high"] < 0.2
    assert h["corr_explicit"]["value"] > 0.7
    assert ex["order_share_equal_weight"]["value"] > h["order_share_explicit"]["value"]
    assert ex["order_share_same_outcomes"]["value"] < 0.7  # within groups: noise only


def test_partial_probability_weighting_is_intermediate(tmp_path):
    model = "sim/eu?probability_weighting=0.5"
    s = run(model, tmp_path)["headline"]["probability_sensitivity"]
    truth = planted_sensitivity(model)
    assert 0.3 < truth < 0.9
    assert s["value"] == pytest.approx(truth, abs=0.15)
    assert s["ci_low"] > 0.2 and s["ci_high"] < 0.95  # neither 0 nor 1


def test_best_outcome_agent_ignores_probabilities(tmp_path):
    # valued at its best outcome: within a group of lotteries over the same outcomes the
    # best one is the same, so it scores ~0, like an agent that ignores probabilities
    result = run("sim/best-outcome", tmp_path)
    h, ex = result["headline"], result["detail"]["explicit"]
    s = h["probability_sensitivity"]
    assert abs(s["value"]) < 0.15 and s["ci_low"] < 0.05  # seeds 0-3: -0.03 to 0.03
    assert abs(planted_sensitivity("sim/best-outcome")) < 0.05
    assert h["corr_explicit"]["value"] > 0.6  # the correlation alone would not tell
    assert ex["order_share_same_outcomes"]["value"] < 0.7


def test_agent_without_lottery_structure_shows_no_expected_utility(tmp_path):
    h = run("sim/thurstone", tmp_path)["headline"]
    assert covers(h["corr_explicit"], 0.0)
    s = h["probability_sensitivity"]  # no relation to read a weight from: wide interval
    assert s["ci_low"] is None or s["ci_high"] - s["ci_low"] > 1


# ---- implicit lotteries: the model's own probabilities -------------------------------


def _belief(event_text: str, sub: str) -> float:
    """A planted belief far from the base rates: the event's base rates reversed."""
    lot = next(x for x in lotteries() if x["text"] == event_text)
    rates = [p for p, _ in lot["branches"]]
    return rates[::-1][[t for _, t in lot["branches"]].index(sub)]


class OwnBeliefAgent(ExpectedUtilityAgent):
    """Expected utility with its own probabilities for the real events' sub-outcomes."""

    def structure(self, text):
        lot = next((x for x in lotteries() if x["text"] == text), None)
        if lot is None or lot["kind"] != "implicit":
            return super().structure(text)
        return [(_belief(text, t), t) for _, t in lot["branches"]]

    def probability(self, event, rng):
        lot = next(x for x in lotteries() if event in [t for _, t in x["branches"]])
        return 100 * _belief(lot["text"], event)


class VagueAgent(ExpectedUtilityAgent):
    """Answers 'no idea' for the sub-outcomes of the first event."""

    def probability(self, event, rng):
        first = next(x for x in lotteries() if x["kind"] == "implicit")
        if event in [t for _, t in first["branches"]]:
            return float("nan")
        return super().probability(event, rng)


class MuteAgent(ExpectedUtilityAgent):
    """Gives no number for any probability question."""

    def probability(self, event, rng):
        return float("nan")


def test_implicit_lotteries_use_the_models_own_probabilities(tmp_path, monkeypatch):
    monkeypatch.setitem(_AGENTS, "own-belief", OwnBeliefAgent)
    result = run("sim/own-belief", tmp_path)
    subs = result["tables"]["sub_outcomes"]
    assert subs and all(
        r["model_probability"] == pytest.approx(_belief(_event_text(r["event"]), r["outcome"]))
        for r in subs
    )
    for row in (r for r in result["tables"]["lotteries"] if r["kind"] == "implicit"):
        mine = [r for r in subs if r["event"] == row["id"]]
        want = sum(r["model_probability"] * r["utility"] for r in mine)
        assert row["expected_utility"] == pytest.approx(want, abs=1e-9)
        base = sum(r["base_rate"] * r["utility"] for r in mine)
        assert row["expected_utility_base_rate"] == pytest.approx(base, abs=1e-9)
    h = result["headline"]
    assert h["corr_implicit"]["value"] > 0.9 and h["mae_implicit"]["value"] < 0.3
    assert h["mae_implicit"]["value"] < h["mae_implicit_base_rate"]["value"]
    assert result["probability_elicitation"]["mean_abs_diff_from_base_rate"] > 0.05


def _event_text(event_id: str) -> str:
    return next(x["text"] for x in lotteries() if x["id"] == event_id)


def test_unparseable_probabilities_are_counted_and_the_event_dropped(tmp_path, monkeypatch):
    monkeypatch.setitem(_AGENTS, "vague", VagueAgent)
    result = run("sim/vague", tmp_path)
    first = next(x for x in lotteries() if x["kind"] == "implicit")
    el = result["probability_elicitation"]
    assert el["unparseable"] == len(first["branches"]) and el["events_dropped"] == 1
    assert result["dropped_no_probability"] == 1
    row = next(r for r in result["tables"]["lotteries"] if r["id"] == first["id"])
    assert row["expected_utility"] is None and row["expected_utility_base_rate"] is not None
    assert result["detail"]["implicit"]["n"] == result["sizes"]["events"] - 1
    assert result["detail"]["implicit_base_rate"]["n"] == result["sizes"]["events"]


def test_no_usable_probability_keeps_explicit_and_base_rate_results(tmp_path, monkeypatch):
    monkeypatch.setitem(_AGENTS, "mute", MuteAgent)
    result = run("sim/mute", tmp_path)
    h = result["headline"]
    assert "corr_implicit" not in h and "probability_sensitivity_implicit" not in h
    assert h["corr_implicit_base_rate"]["value"] > 0.9 and h["corr_explicit"]["value"] > 0.9
    el = result["probability_elicitation"]
    assert el["unparseable"] == el["asked"] > 0 and el["events_dropped"] == el["events"]
    assert "only 0 implicit lotteries usable" in result["notes"][0]
    assert "Too few of the model's probabilities" in result["reading"]


def test_reference_probabilities_skip_the_question(tmp_path):
    result = run("sim/eu?probability_weighting=0.5", tmp_path, probabilities="reference")
    assert result["probability_elicitation"]["asked"] == 0
    assert result["tables"]["sub_outcomes"] == []
    h = result["headline"]
    assert h["corr_implicit"]["value"] == h["corr_implicit_base_rate"]["value"]
    assert "base-rate" in h["corr_implicit"]["label"]


def test_bad_agent_parameter_is_one_clear_error():
    expected = "parameter probability_weighting: expected a number at least 0, got '-1'"
    with pytest.raises(ValuescopeError, match=expected):
        get_backend("sim/eu?probability_weighting=-1")
    with pytest.raises(ValuescopeError, match="has no parameter 'gamma'"):
        get_backend("sim/best-outcome?gamma=1")
