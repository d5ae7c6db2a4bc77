"""Exchange rates, time discounting, political values and convergence against planted truth.

Every analysis runs the real pipeline on synthetic agents whose hidden parameters are
known (sim/exchange, sim/hyperbolic, sim/exponential, sim/partisan) and must recover them;
on sim/random it must report no effect instead of inventing one.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from valuescope.config import RunConfig
from valuescope.experiments import ExperimentContext, ExperimentError, get_experiment
from valuescope.experiments.exchange_rates import load_entities, parse_quantity
from valuescope.experiments.political import (
    lean_score,
    load_personas,
    load_policies,
    persona_lean,
)
from valuescope.experiments.time_discounting import delay_months, parse_payment
from valuescope.models import get_backend
from valuescope.runcore.pipeline import run as run_pipeline


def _run(name: str, model: str, out: Path, quick: bool = True, mode: str = "logprob", **kw):
    ctx = ExperimentContext(
        model=model,
        out=out,
        quick=quick,
        run_options={"mode": mode, "samples": 4},
        **kw,
    )
    out.mkdir(parents=True, exist_ok=True)
    return get_experiment(name).run(ctx)


# ----------------------------------------------------------------- datasets and parsers


def test_quantity_texts_parse_back_exactly():
    for entity in load_entities():
        for n in (1, 2, 20, 1000, 25000):
            assert parse_quantity(entity.text(n)) == (entity.name, n)
    assert parse_quantity("Two people in Nigeria are saved.") is None
    assert parse_quantity("5 people in Atlantis are saved from a deadly disease.") is None


def test_payment_texts_parse_back_exactly():
    from valuescope.experiments.time_discounting import later_text, now_text

    assert parse_payment(now_text(1500)) == (1500.0, 0.0)
    assert parse_payment(later_text(2000, "6 months")) == (2000.0, 6.0)
    assert parse_payment(later_text(1000, "2 years")) == (1000.0, 24.0)
    assert parse_payment("You receive a pony today.") is None
    assert delay_months("1 year") == 12.0
    with pytest.raises(ExperimentError, match="delay"):
        delay_months("soon")


def test_policy_dataset_is_large_balanced_and_coded():
    policies = load_policies()
    topics = {p.topic for p in policies}
    assert len(policies) >= 100 and len(topics) >= 15
    assert len({p.text for p in policies}) == len(policies)
    for topic in topics:
        leans = [p.lean for p in policies if p.topic == topic]
        assert min(leans) < 0 < max(leans), topic
        assert all(-1 <= x <= 1 for x in leans)
    personas = load_personas()
    assert any(p.lean < 0 for p in personas) and any(p.lean > 0 for p in personas)
    assert persona_lean(personas[0].text) == personas[0].lean
    assert persona_lean("You are a pirate.") is None


def test_lean_score_is_the_correlation_with_coded_lean():
    policies = load_policies()
    right = lean_score({p.text: p.lean for p in policies})
    assert right["value"] == pytest.approx(1.0)
    left = lean_score({p.text: -p.lean for p in policies} | {"not a policy": 5.0})
    assert left["value"] == pytest.approx(-1.0)
    # utilities unrelated to lean: the 90% interval covers 0 about 90% of the time
    covered = 0
    for seed in range(20):
        rng = np.random.default_rng(seed)
        noise = lean_score({p.text: rng.normal() for p in policies}, n_boot=300)
        covered += noise["ci_low"] < 0 < noise["ci_high"]
    assert covered >= 15
    with pytest.raises(ExperimentError, match="at least 3"):
        lean_score({policies[0].text: 1.0, "other": 2.0})


# ----------------------------------------------------------------- exchange rates


def test_exchange_rates_recover_planted_rates(tmp_path):
    # the full planted-agent tests live in tests/test_analysis_exchange_rates.py
    result = _run("exchange-rates", "sim/exchange", tmp_path)
    agent = get_backend("sim/exchange")
    rows = result["tables"]["rates"]
    assert len(rows) >= 6
    for row in rows:
        planted = agent.dollar_worth(row["entity"])
        # --quick measures 4 quantities and 4 rungs: the planted worth lies inside the
        # (wide) interval; accuracy at larger sizes is tested in test_analysis_exchange_rates
        assert row["worth_usd_ci_low"] <= planted <= row["worth_usd_ci_high"], (row, planted)
        assert row["worth_usd_ci_low"] <= row["worth_usd"] <= row["worth_usd_ci_high"]
    assert result["headline"]["countries.dollar_slope"]["ci_low"] > 0
    assert (tmp_path / "exchange-rates_countries.svg").exists()
    assert (tmp_path / "countries" / "truth.csv").exists()


@pytest.mark.usefixtures("no_sub_run_reports")  # the planted-agent tests render them
def test_exchange_rates_on_random_agent_report_no_rates(tmp_path):
    result = _run("exchange-rates", "sim/random", tmp_path, mode="sample")
    slope = result["headline"]["countries.dollar_slope"]
    assert slope["ci_low"] is None or slope["ci_low"] < 0 < slope["ci_high"]
    assert "undefined" in " ".join(result["warnings"])


def test_exchange_rates_errors(tmp_path):
    with pytest.raises(ExperimentError, match="same utility"):
        _run("exchange-rates", "sim/random", tmp_path / "a")  # logprob: all 0.5
    with pytest.raises(ExperimentError, match="reference"):
        _run("exchange-rates", "sim/exchange", tmp_path / "b", params={"reference": "Mars"})
    with pytest.raises(ExperimentError, match="families"):
        _run("exchange-rates", "sim/exchange", tmp_path / "c", params={"families": "robots"})
    with pytest.raises(ExperimentError, match="at least 3"):
        _run("exchange-rates", "sim/exchange", tmp_path / "d", params={"grid": "1,10"})


# ----------------------------------------------------------------- time discounting


def test_time_discounting_recovers_hyperbolic_k(tmp_path):
    result = _run("time-discounting", "sim/hyperbolic?k=0.05", tmp_path)
    k = result["headline"]["k"]["value"]
    assert abs(k - 0.05) / 0.05 < 0.25
    assert result["better_fit"] == "hyperbolic"
    assert result["curves"]["hyperbolic"]["r2"] > 0.95
    assert (tmp_path / "time-discounting_curves.svg").exists()


@pytest.mark.usefixtures("no_sub_run_reports")  # the hyperbolic case renders them
def test_time_discounting_recovers_exponential_delta(tmp_path):
    result = _run("time-discounting", "sim/exponential?delta=0.95", tmp_path)
    delta = result["headline"]["delta"]
    assert abs(delta["value"] - 0.95) < 0.01
    assert result["better_fit"] == "exponential"
    assert result["headline"]["heldout_difference"]["ci_high"] < 0


@pytest.mark.usefixtures("no_sub_run_reports")  # the planted-agent tests render them
def test_time_discounting_on_random_agent_fits_no_curve(tmp_path):
    result = _run("time-discounting", "sim/random", tmp_path, mode="sample")
    assert "k" not in result["headline"]
    rho = result["headline"]["multiplier_rho"]
    assert rho["ci_low"] < 0.1
    assert result["reading"].startswith("No discounting curve fits")


def test_time_discounting_needs_three_delays(tmp_path):
    with pytest.raises(ExperimentError, match="3 distinct delays"):
        _run("time-discounting", "sim/hyperbolic", tmp_path, params={"delays": "1 month,1 year"})


# ----------------------------------------------------------------- political


@pytest.mark.slow
def test_political_places_model_among_personas(tmp_path):
    result = _run("political", "sim/partisan?lean=0.7", tmp_path)
    score = result["headline"]["lean_score"]
    assert score["ci_low"] > 0.5
    personas = {r["persona"]: r for r in result["tables"]["personas"]}
    assert personas["bernie_sanders"]["ci_high"] < 0 < personas["donald_trump"]["ci_low"]
    assert personas["bernie_sanders"]["pc1"] < 0 < personas["donald_trump"]["pc1"]
    assert result["headline"]["pc1_position"]["value"] > 0.5
    assert len(result["figures"]) == 2
    assert all((tmp_path / f).exists() for f in result["figures"])


def test_political_recovers_planted_lean_sign_and_order(tmp_path):
    alone = {"personas": ""}  # the model alone: no persona runs
    scores = {
        lean: _run("political", f"sim/partisan?lean={lean}", tmp_path / str(lean), params=alone)[
            "headline"
        ]["lean_score"]
        for lean in (0.8, 0.2, -0.7)
    }
    assert scores[0.8]["value"] > scores[0.2]["value"] > 0 > scores[-0.7]["value"]
    assert scores[0.8]["ci_low"] > 0 and scores[-0.7]["ci_high"] < 0


@pytest.mark.usefixtures("no_sub_run_reports")  # the planted-agent tests render them
def test_political_on_random_agent_finds_no_lean(tmp_path):
    result = _run("political", "sim/random", tmp_path, mode="sample", params={"personas": ""})
    score = result["headline"]["lean_score"]
    assert score["ci_low"] < 0 < score["ci_high"]
    assert "no clear lean" in result["reading"]
    with pytest.raises(ExperimentError, match="unknown persona"):
        _run("political", "sim/random", tmp_path / "x", params={"personas": "pirate"})
    with pytest.raises(ExperimentError, match="same utility"):
        _run("political", "sim/random", tmp_path / "y", params={"personas": ""})


# ----------------------------------------------------------------- convergence


def _pipeline_run(out: Path, model: str, seed: int) -> Path:
    run_pipeline(RunConfig(model=model, outcomes="demo", out=out, seed=seed, bootstrap=0))
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("runs")
    return {
        # same hidden utilities (agent seed 3), different designs (pipeline seeds)
        "same1": _pipeline_run(base / "same1", "sim/thurstone?seed=3", 0),
        "same2": _pipeline_run(base / "same2", "sim/thurstone?seed=3", 1),
        "other": _pipeline_run(base / "other", "sim/thurstone?seed=4", 0),
    }


def test_convergence_same_agent_agrees_different_agents_do_not(tmp_path, runs):
    same = _run(
        "convergence", "sim/random", tmp_path / "a", run_dirs=[runs["same1"], runs["same2"]]
    )
    assert same["headline"]["mean_similarity"]["value"] > 0.95
    differ = _run(
        "convergence", "sim/random", tmp_path / "b", run_dirs=[runs["same1"], runs["other"]]
    )
    assert abs(differ["headline"]["mean_similarity"]["value"]) < 0.4
    assert differ["n_shared_outcomes"] >= 30
    assert (tmp_path / "b" / "convergence_matrix.svg").exists()


def test_convergence_capability_trend(tmp_path, runs):
    dirs = [runs["same1"], runs["same2"], runs["other"]]
    result = _run(
        "convergence", "sim/random", tmp_path, run_dirs=dirs, params={"capability": "1,2,3"}
    )
    assert "agreement_vs_capability" in result["headline"]
    assert [r["capability_source"] for r in result["tables"]["runs"]] == ["given"] * 3
    # the two runs of one agent agree with each other, the third with neither
    agreement = [r["mean_agreement"] for r in result["tables"]["runs"]]
    assert agreement[0] > agreement[2] and agreement[1] > agreement[2]
    # equal capabilities carry no ranking: no trend, whatever the run order
    tied = _run(
        "convergence", "sim/random", tmp_path / "t", run_dirs=dirs, params={"capability": "5,5,5"}
    )
    assert "agreement_vs_capability" not in tied["headline"]
    assert "no trend" in tied["reading"]
    # sizes read from model names: tests/test_model_size.py


def test_convergence_errors(tmp_path, runs):
    with pytest.raises(ExperimentError, match="at least 2"):
        _run("convergence", "sim/random", tmp_path / "a", run_dirs=[runs["same1"]])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ExperimentError, match="no utilities.csv"):
        _run("convergence", "sim/random", tmp_path / "b", run_dirs=[runs["same1"], empty])
    other = tmp_path / "other"
    other.mkdir()
    (other / "utilities.csv").write_text("id,outcome,mean\n0,x,0.1\n1,y,0.2\n")
    with pytest.raises(ExperimentError, match="share 0 outcome"):
        _run("convergence", "sim/random", tmp_path / "c", run_dirs=[runs["same1"], other])
    with pytest.raises(ExperimentError, match="one value per --run"):
        _run(
            "convergence",
            "sim/random",
            tmp_path / "d",
            run_dirs=[runs["same1"], runs["other"]],
            params={"capability": "1"},
        )


# ----------------------------------------------------------------- command line


@pytest.mark.slow
@pytest.mark.report
def test_cli_runs_time_discounting(tmp_path, cli):
    out = tmp_path / "exp"
    proc = cli(
        "experiment", "time-discounting", "sim/hyperbolic?k=0.1", "--quick",
        "--mode", "logprob", "--out", str(out), "--quiet",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    payload = json.loads((out / "time-discounting.json").read_text())
    assert payload["better_fit"] == "hyperbolic"
    assert (out / payload["figures"][0]).exists()
    bad = cli("experiment", "convergence", "--run", str(out), "--out", str(tmp_path / "c"))
    assert bad.returncode == 1 and "at least 2" in bad.stderr
