"""End-to-end acceptance: real CLI runs on synthetic agents."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from conftest import invoke_cli
from scipy.stats import spearmanr

from valuescope.config import RunConfig
from valuescope.fit import coin_completeness
from valuescope.runcore.pipeline import run


def spearman_with_truth(run_dir) -> float:
    utilities = pd.read_csv(run_dir / "utilities.csv")
    truth = pd.read_csv(run_dir / "truth.csv")
    merged = utilities.merge(truth, on="id", suffixes=("", "_true"))
    return float(spearmanr(merged["mean"], merged["mean_true"])[0])


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """One default CLI run on the demo set, which the tests below only read."""
    out = tmp_path_factory.mktemp("pipeline") / "run"
    invoke_cli("run", "sim/thurstone", "--outcomes", "demo", "--out", str(out), "-q", check=True)
    return out


def test_run_directory_contract(demo_run):
    out = demo_run
    for name in ("utilities.csv", "metrics.json", "responses.sqlite", "report.html", "truth.csv"):
        assert (out / name).exists(), name
    utilities = pd.read_csv(out / "utilities.csv")
    assert list(utilities.columns)[:7] == [
        "id",
        "outcome",
        "category",
        "mean",
        "sigma",
        "ci_low",
        "ci_high",
    ]
    assert (utilities["ci_low"] <= utilities["mean"] + 1e-9).all()
    assert (utilities["mean"] <= utilities["ci_high"] + 1e-9).all()
    metrics = json.loads((out / "metrics.json").read_text())
    for key in (
        "model",
        "seed",
        "n_outcomes",
        "n_pairs",
        "n_queries",
        "heldout_accuracy",
        "heldout_log_loss",
        "completeness",
        "cycle_log_prob",
        "position_bias",
        "refusal_rate",
    ):
        assert key in metrics, key
    with sqlite3.connect(out / "responses.sqlite") as conn:
        rows = conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
    assert rows == metrics["n_queries"]


@pytest.mark.slow
def test_recovers_truth_on_main_at_default_budget(cli, tmp_path):
    out = tmp_path / "main"
    cli(
        "run",
        "sim/thurstone",
        "--outcomes",
        "main",
        "--seed",
        "1",
        "--out",
        str(out),
        "-q",
        "--bootstrap",
        "10",
        check=True,
    )
    assert spearman_with_truth(out) >= 0.97


def test_recovers_truth_on_demo_with_full_design(cli, tmp_path):
    out = tmp_path / "demo"
    cli(
        "run",
        "sim/thurstone",
        "--outcomes",
        "demo",
        "--seed",
        "1",
        "--design",
        "full",
        "--out",
        str(out),
        "-q",
        check=True,
    )
    assert spearman_with_truth(out) >= 0.99


def test_sample_mode_recovers_truth(tmp_path):
    result = run(
        RunConfig(
            model="sim/thurstone",
            outcomes="demo",
            mode="sample",
            samples=5,
            design="full",
            seed=2,
            out=tmp_path,
            bootstrap=0,
        )
    )
    assert result.metrics["truth"]["spearman"] >= 0.95


@pytest.mark.slow  # two demo runs (8 s); planted agents in test_coherence_metrics.py are fast
def test_random_agent_is_at_chance_and_coherent_agent_is_not(tmp_path):
    common = dict(
        outcomes="main", mode="sample", samples=3, budget=2000, seed=4, bootstrap=0, design="random"
    )
    rand = run(RunConfig(model="sim/random", out=tmp_path / "r", **common)).metrics
    coherent = run(RunConfig(model="sim/thurstone", out=tmp_path / "t", **common)).metrics
    assert rand["n_heldout_pairs"] == 1000
    assert 0.44 <= rand["heldout_accuracy"] <= 0.56
    assert rand["completeness"] == pytest.approx(coin_completeness(6), abs=0.02)
    assert rand["completeness_random_expected"] == pytest.approx(coin_completeness(6))
    assert rand["cycle_prob"] == pytest.approx(0.25, abs=0.03)
    assert coherent["heldout_accuracy"] >= 0.78
    assert coherent["heldout_accuracy"] - rand["heldout_accuracy"] >= 0.25
    # the report puts the random agent beside the model, under the same protocol
    base = coherent["baseline_random"]
    assert 0.4 <= base["heldout_accuracy"] <= 0.6
    assert base["completeness"] == pytest.approx(coin_completeness(6), abs=0.03)


def test_planted_position_bias_and_refusals_are_measured(tmp_path):
    model = "sim/thurstone?position_bias=0.3&refusal_rate=0.2"
    m = run(
        RunConfig(
            model=model,
            outcomes="demo",
            mode="sample",
            samples=4,
            seed=3,
            out=tmp_path,
            bootstrap=0,
        )
    ).metrics
    assert m["position_bias"] == pytest.approx(0.5 + 0.3 / 2, abs=0.04)
    assert m["refusal_rate"] == pytest.approx(0.2, abs=0.03)


def test_same_seed_same_utilities(tmp_path):
    cfg = dict(
        model="sim/thurstone", outcomes="demo", mode="sample", samples=3, seed=5, bootstrap=5
    )
    a = run(RunConfig(out=tmp_path / "a", **cfg)).utilities
    b = run(RunConfig(out=tmp_path / "b", **cfg)).utilities
    pd.testing.assert_frame_equal(a, b)


def test_refit_of_recorded_data_is_deterministic(cli, demo_run, tmp_path):
    out = demo_run
    cli("fit", str(out), "--out", str(tmp_path / "a.csv"), check=True)
    cli("fit", str(out), "--out", str(tmp_path / "b.csv"), check=True)
    a, b = pd.read_csv(tmp_path / "a.csv"), pd.read_csv(tmp_path / "b.csv")
    pd.testing.assert_frame_equal(a, b)
    original = pd.read_csv(out / "utilities.csv")
    np.testing.assert_allclose(a["mean"], original["mean"], atol=1e-9)


def test_rerun_asks_nothing_twice(tmp_path):
    cfg = RunConfig(model="sim/thurstone", outcomes="demo", out=tmp_path, bootstrap=0)
    first = run(cfg).metrics
    second = run(cfg).metrics
    assert second["n_queries_new"] == 0
    assert second["n_queries_cached"] == first["n_queries"]


def _rows(db) -> int:
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
    except sqlite3.Error:
        return 0


@pytest.mark.slow  # a killed subprocess (8 s); test_api_backends kills and resumes a run fast
def test_killed_run_resumes_without_asking_twice(cli, tmp_path):
    model = "sim/thurstone?delay=0.02"
    args = [
        "run",
        model,
        "--outcomes",
        "demo",
        "--mode",
        "sample",
        "--samples",
        "2",
        "--batch-size",
        "20",
        "--seed",
        "3",
        "--bootstrap",
        "5",
        "-q",
    ]
    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "valuescope.cli", *args, "--out", str(killed)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=dict(os.environ, PYTHONWARNINGS="ignore"),
    )
    deadline = time.time() + 60
    while _rows(killed / "responses.sqlite") < 300 and time.time() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = _rows(killed / "responses.sqlite")
    assert before >= 300
    assert not (killed / "metrics.json").exists(), "the run finished before it was killed"

    cli(*args, "--out", str(killed), check=True)
    resumed = json.loads((killed / "metrics.json").read_text())
    assert resumed["n_queries_new"] == resumed["n_queries"] - before
    assert _rows(killed / "responses.sqlite") == resumed["n_queries"]

    whole = tmp_path / "whole"
    cli(*args, "--out", str(whole), check=True)
    pd.testing.assert_frame_equal(
        pd.read_csv(killed / "utilities.csv"), pd.read_csv(whole / "utilities.csv")
    )


def test_resume_flag_uses_saved_settings(cli, tmp_path):
    out = tmp_path / "run"
    cli(
        "run",
        "sim/thurstone",
        "--outcomes",
        "demo",
        "--seed",
        "9",
        "--out",
        str(out),
        "-q",
        check=True,
    )
    proc = cli("run", "--resume", "--out", str(out), "--json", check=True)
    metrics = json.loads(proc.stdout)
    assert metrics["seed"] == 9 and metrics["n_queries_new"] == 0
