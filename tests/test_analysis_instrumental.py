"""Instrumental values over multi-step Markov processes: Bellman consistency of the
elicited utilities, natural processes against their unnatural (scrambled) twins.

Planted agents: one consistent with the true transitions (must separate natural from
unnatural), one with independent utilities (must not), and one consistent with the
scrambled transitions (must separate the wrong way)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from valuescope.errors import UnknownModelError
from valuescope.experiments import (
    ExperimentContext,
    ExperimentError,
    _markov,
    get_experiment,
    write_result,
)
from valuescope.models import get_backend

pytestmark = pytest.mark.usefixtures("no_sub_run_reports")  # conftest says why

N_PROCESSES = "10"


def run(model: str, tmp_path: Path, mode: str = "logprob", **params: str) -> dict:
    ctx = ExperimentContext(
        model=model,
        out=tmp_path / "instrumental",
        quick=True,
        run_options={"mode": mode, "samples": 2, "bootstrap": 0},
        params={"processes": N_PROCESSES, **params},
    )
    ctx.out.mkdir(parents=True, exist_ok=True)
    result = get_experiment("instrumental").run(ctx)
    write_result(ctx, get_experiment("instrumental"), result)
    assert (ctx.out / result["figures"][0]).read_text().lstrip().startswith("<?xml")
    return result


def covers(entry: dict, value: float) -> bool:
    return entry["ci_low"] <= value <= entry["ci_high"]


# -- planted agents ---------------------------------------------------------------------
def test_consistent_agent_separates_natural_from_unnatural(tmp_path):
    result = run("sim/instrumental", tmp_path)
    h = result["headline"]
    assert result["verdict"] == "instrumental"
    assert h["bellman_error_natural"]["value"] < 0.5  # fit noise only
    assert h["bellman_error_unnatural"]["value"] > 1.0
    assert h["bellman_gap"]["ci_low"] > 0.6
    assert h["fitted_loss_natural"]["value"] < 0.35
    assert h["fitted_gap"]["ci_low"] > 0.4
    assert result["detail"]["bellman_error"]["gap"]["p_value"] < 0.01
    assert result["beyond_valence"] is True and h["bellman_gap_valence"]["ci_low"] > 0.2
    assert len(result["tables"]["processes"]) == 10


def test_independent_utilities_do_not_separate(tmp_path):
    # every state has its own utility, unrelated to the process: natural and unnatural
    # twins see exchangeable utilities, so their errors differ only by chance
    result = run("sim/instrumental?transitions=none", tmp_path)
    h = result["headline"]
    assert result["verdict"] == "none"
    assert covers(h["bellman_gap"], 0.0) and covers(h["fitted_gap"], 0.0)
    assert h["bellman_error_natural"]["value"] > 1.0
    assert h["fitted_loss_natural"]["value"] > 0.8
    assert result["beyond_valence"] is False


def test_agent_consistent_with_the_wrong_transitions_is_not_instrumental(tmp_path):
    # utilities that are Bellman-consistent with the scrambled twins: the statistic must
    # not credit them with instrumental values on the real processes
    result = run("sim/instrumental?transitions=shuffled", tmp_path)
    h = result["headline"]
    assert result["verdict"] == "reversed"
    assert h["bellman_gap"]["ci_high"] < -0.6
    assert h["bellman_error_unnatural"]["value"] < 0.5
    assert h["fitted_gap"]["ci_high"] < -0.4
    assert result["beyond_valence"] is False


def test_agent_that_rates_how_good_states_sound_is_caught_by_the_valence_control(tmp_path):
    # ignores what follows, but better states lead mostly to better states: the plain
    # natural-vs-unnatural gap is fooled; twins that keep each state's better/worse place
    # are fitted as well as the real processes, so the valence gap covers 0
    result = run("sim/instrumental?transitions=valence", tmp_path)
    h = result["headline"]
    assert result["verdict"] == "instrumental" and h["bellman_gap"]["ci_low"] > 0.1
    assert result["beyond_valence"] is False
    assert covers(h["bellman_gap_valence"], 0.0) and abs(h["bellman_gap_valence"]["value"]) < 0.15


def test_coin_flipping_agent_does_not_separate(tmp_path):
    result = run("sim/random", tmp_path, mode="sample")
    assert result["verdict"] == "none"
    assert covers(result["headline"]["bellman_gap"], 0.0)


# -- the statistics on exact values -----------------------------------------------------
def exact_values(proc: _markov.Process, terminal: np.ndarray) -> dict[str, float]:
    values = proc.absorption() @ terminal
    return dict(zip(proc.states, values))


def test_exact_expected_values_are_bellman_consistent_and_their_twins_are_not():
    rng = np.random.default_rng(0)
    twin_errors = []
    for proc in _markov.processes():
        utility = exact_values(proc, rng.normal(size=len(proc.steps[-1])))
        z = _markov.zscores(proc, utility)
        assert _markov.bellman_error(proc, z) == pytest.approx(0, abs=1e-9)
        assert _markov.fitted_loss(proc, z) == pytest.approx(0, abs=1e-9)
        twin = _markov.unnatural(proc)
        twin_errors.append(_markov.bellman_error(twin, _markov.zscores(twin, utility)))
    assert min(twin_errors) > 0.1 and np.mean(twin_errors) > 0.8


def test_statistics_ignore_the_scale_and_offset_of_utilities():
    proc = _markov.processes()[0]
    rng = np.random.default_rng(1)
    utility = {s: float(rng.normal()) for s in proc.states}
    shifted = {s: 3.0 * u - 7.0 for s, u in utility.items()}
    for stat in (_markov.bellman_error, _markov.fitted_loss):
        a = stat(proc, _markov.zscores(proc, utility))
        b = stat(proc, _markov.zscores(proc, shifted))
        assert a == pytest.approx(b) and a > 0.1


def test_one_step_residual_by_hand():
    proc = _markov.processes()[0]  # 1 + 2 + 2 + 2 states
    z = np.arange(7, dtype=float)
    here, ahead = _markov.one_step(proc, z)
    p0, p1 = proc.p[0], proc.p[1]
    assert here.tolist() == [0, 1, 2, 3, 4]
    assert ahead[0] == pytest.approx(p0[0, 0] * 1 + p0[0, 1] * 2)
    assert ahead[2] == pytest.approx(p1[1, 0] * 3 + p1[1, 1] * 4)


def test_unnatural_twin_moves_every_state_to_another_step():
    for proc in _markov.processes():
        twin = _markov.unnatural(proc)
        assert twin == _markov.unnatural(proc)  # fixed: a planted agent can mirror it
        assert twin.steps[0] == proc.steps[0] and sorted(twin.states) == sorted(proc.states)
        home = {s: k for k, step in enumerate(proc.steps) for s in step}
        assert all(home[s] != k for k, step in enumerate(twin.steps[1:], 1) for s in step)
        assert all(np.array_equal(a, b) for a, b in zip(twin.p, proc.p))
        assert np.allclose(twin.absorption().sum(axis=1), 1)


def test_valence_twin_keeps_places_and_moves_every_state_to_another_step():
    for proc in _markov.processes():
        twin = _markov.valence_twin(proc)
        assert twin.steps[0] == proc.steps[0] and sorted(twin.states) == sorted(proc.states)
        for k, step in enumerate(twin.steps[1:], 1):
            for i, text in enumerate(step):
                home, place, _ = _markov.place(text)
                assert place == i and home != k


def test_dataset_has_the_papers_size():
    procs = _markov.processes()
    assert len(procs) >= 20
    assert all(len(p.steps) - 1 >= 3 for p in procs)
    assert sum(len(p.states) for p in procs) >= 140


# -- errors -----------------------------------------------------------------------------
def test_bad_inputs_are_clear_errors(tmp_path):
    with pytest.raises(ExperimentError, match="processes='2'"):
        run("sim/instrumental", tmp_path, processes="2")
    with pytest.raises(ExperimentError, match="processes='many'"):
        run("sim/instrumental", tmp_path, processes="many")
    expected = "parameter transitions: expected one of .*, got 'maybe'"
    with pytest.raises(UnknownModelError, match=expected):
        get_backend("sim/instrumental?transitions=maybe")
    item = {"id": "x", "start": "a", "steps": [["b", "c"], ["d", "e"]], "p": [[[1, 0]], []]}
    with pytest.raises(ExperimentError, match="fewer than 3 steps"):
        _markov._parse(item)
    item = {"id": "x", "start": "a", "steps": [["b"], ["c"], ["d"]], "p": [[[0.5]], [[1]], [[1]]]}
    with pytest.raises(ExperimentError, match="x step 1 rows must sum to 1"):
        _markov._parse(item)
    item["p"] = [[[1]], [[1, 0]], [[1]]]
    with pytest.raises(ExperimentError, match=r"x step 2 probabilities have shape \(1, 2\)"):
        _markov._parse(item)
    with pytest.raises(ExperimentError, match="constant utilities"):
        proc = _markov.processes()[0]
        _markov.zscores(proc, dict.fromkeys(proc.states, 0.5))
