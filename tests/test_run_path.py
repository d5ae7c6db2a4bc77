"""The one run path (`runcore.session.open_run`): every command that asks a model goes through it.

`valuescope run`, `sensitivity`, an analysis's sub-runs and direct choices, and the
citizens' assembly each take the run directory's lock, write run_config.json, answer
through the engine the settings name (local or Ray) and keep the cache keys they always
had (pinned below from the code before the paths were merged, so old caches still hit).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from valuescope.cli import app
from valuescope.config import RunConfig
from valuescope.control.assembly_run import AssembleConfig, assemble
from valuescope.errors import BackendError, ValuescopeError
from valuescope.experiments._choices import ask_pairs
from valuescope.experiments.base import ExperimentContext
from valuescope.models import get_backend
from valuescope.outcomes import load_outcomes
from valuescope.runcore.rundir import LOCK_FILE, outcomes_digest
from valuescope.runcore.sensitivity import sensitivity

SMALL_ASSEMBLY = {"outcomes": "demo", "citizens": 3, "pairs": 6, "arguments": 2, "seed": 0}


def vs(*args: str) -> None:
    """`valuescope ARGS` in this process."""
    app(list(args), standalone_mode=False)


def key_digest(path: Path) -> tuple[int, str]:
    """(number of answers, sha256 of their sorted cache keys)."""
    with sqlite3.connect(path) as conn:
        keys = sorted(k for (k,) in conn.execute("SELECT key FROM responses"))
    return len(keys), hashlib.sha256("\n".join(keys).encode()).hexdigest()


def cache_rows(path: Path) -> dict[str, str]:
    with sqlite3.connect(path) as conn:
        return dict(conn.execute("SELECT key, answer FROM responses").fetchall())


def saved_config(out: Path) -> dict:
    return json.loads((out / "run_config.json").read_text())


def sensitivity_config(out: Path, **extra) -> RunConfig:
    return RunConfig(
        **{"model": "sim/thurstone", "outcomes": "demo", "budget": 40, **extra}, out=out
    )


# -- cache keys: the same questions as before the paths were merged ---------------------------
# Digests of the sorted cache keys, computed with the code before the run path was one
# (sensitivity.py and control/assemble.py building their own queries).
PINNED = {
    "assembly": (320, "1b1d4ab29fed990f15ada86ed9d6297787490901997c7df6f257a43eae8f616e"),
    "assembly-sample": (606, "8e699591c60259efdf01535da748a01ba8f474d4a67cd3c0f09f24f79270c90a"),
    "sensitivity": (640, "5a721d4d338cf80d1a8657be7904e127bd6e2e659d1549652b2ec07afd6699bd"),
    "sensitivity-sample": (
        1440,
        "97c9f178c097c4e2712cc656cff473ea70d266fac25907c9c8d3b6fadfd433ea",
    ),
}


def test_cache_keys_are_the_ones_older_versions_wrote(tmp_path):
    assemble(AssembleConfig(model="sim/citizen", out=tmp_path / "a", **SMALL_ASSEMBLY))
    sample = {**SMALL_ASSEMBLY, "mode": "sample", "samples": 2}
    assemble(AssembleConfig(model="sim/citizen", out=tmp_path / "b", **sample))
    sensitivity(sensitivity_config(tmp_path / "s"))
    sensitivity(sensitivity_config(tmp_path / "t", mode="sample", samples=2))
    got = {
        name: key_digest(tmp_path / d / "responses.sqlite")
        for name, d in (
            ("assembly", "a"),
            ("assembly-sample", "b"),
            ("sensitivity", "s"),
            ("sensitivity-sample", "t"),
        )
    }
    assert got == PINNED


# -- run_config.json on every path ------------------------------------------------------------
def test_sensitivity_records_its_run_and_refuses_another_runs_directory(tmp_path):
    out = tmp_path / "sens"
    first = sensitivity(sensitivity_config(out))
    saved = saved_config(out)
    assert saved["design"] == "random" and saved["heldout_fraction"] == 0.0
    assert saved["template"] == ",".join(first.summary["templates"])
    assert saved["engine"] == "local"
    texts = load_outcomes("demo")
    assert saved["outcomes_sha256"] == outcomes_digest(texts.texts, texts.categories)
    again = sensitivity(sensitivity_config(out))  # the same run again: all from the cache
    assert again.summary["n_queries_new"] == 0
    assert again.summary["n_queries"] == first.summary["n_queries"] > 0
    with pytest.raises(ValuescopeError, match="holds another run .*budget 40 -> 50"):
        sensitivity(sensitivity_config(out).model_copy(update={"budget": 50}))
    with pytest.raises(ValuescopeError, match="holds another run"):
        vs("run", "sim/thurstone", "--out", str(out), "-q")
    replaced = sensitivity(sensitivity_config(out, budget=50), overwrite=True)
    assert replaced.summary["n_pairs"] == 50 and saved_config(out)["budget"] == 50


def test_assembly_records_its_settings_and_outcomes(tmp_path):
    out = tmp_path / "assembly"
    summary = assemble(AssembleConfig(model="sim/citizen", out=out, **SMALL_ASSEMBLY))
    saved = saved_config(out)
    assert {k: saved[k] for k in SMALL_ASSEMBLY} == SMALL_ASSEMBLY
    assert saved["engine"] == "local" and saved["rounds"] == 2
    assert saved["outcomes_count"] == summary["n_outcomes"] == 36
    snapshot = json.loads((out / "outcomes_snapshot.json").read_text())
    assert snapshot["sha256"] == saved["outcomes_sha256"]


def test_analysis_direct_choices_record_their_run(tmp_path):
    ctx = ExperimentContext(model="sim/thurstone", out=tmp_path)
    texts = ["apples", "bread", "cheese", "dates"]
    asked = ask_pairs(ctx, "choices", texts, np.array([[0, 1], [2, 3]]))
    assert asked.answers.n_queries == 4
    saved = saved_config(tmp_path / "choices")
    assert saved["model"] == "sim/thurstone" and saved["outcomes_count"] == 4


def test_an_analysis_builds_its_backend_once(tmp_path, monkeypatch):
    """Two sub-runs and a set of direct choices: one backend, built once."""
    import valuescope.models
    import valuescope.runcore.plan

    built = []
    real = valuescope.models.get_backend

    def counting(model, **options):
        built.append(model)
        return real(model, **options)

    monkeypatch.setattr(valuescope.models, "get_backend", counting)
    monkeypatch.setattr(valuescope.runcore.plan, "get_backend", counting)
    ctx = ExperimentContext(model="sim/thurstone", out=tmp_path, run_options={"bootstrap": 0})
    outcomes = [f"outcome {i}" for i in range(6)]
    ctx.measure("first", outcomes)
    ctx.measure("second", outcomes, budget=10)
    ask_pairs(ctx, "choices", outcomes, np.array([[0, 1]]))
    assert ctx.backend() is ctx.backend()
    assert built == ["sim/thurstone"]


# -- the lock: a second process on the same directory fails at once ---------------------------
def _start_holder(out: Path, *command: str) -> subprocess.Popen:
    """A valuescope command in another process, returned once it holds `out`'s lock."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "valuescope", *command, "--out", str(out), "-q"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    lock = out / LOCK_FILE
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if lock.is_file() and lock.read_text().strip() == str(proc.pid):
            return proc
        if proc.poll() is not None:
            raise AssertionError(f"the holder ended early: {proc.stderr.read().decode()}")
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("the holder never took the lock")


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(timeout=60)


@pytest.mark.slow  # holders run 0.5 s a query; test_hardening_cli locks each command
def test_the_lock_refuses_a_second_process_on_every_path(tmp_path):
    out = tmp_path / "busy"
    slow = "sim/thurstone?delay=0.5"
    # a slow sensitivity run holds the directory ...
    holder = _start_holder(out, "sensitivity", slow, "--outcomes", "demo")
    try:
        refused = rf"another run is in progress in .* \(pid {holder.pid}\)"
        # ... so the same sensitivity again, an assembly and a run there all fail at once
        same = RunConfig(model=slow, outcomes="demo", out=out, bootstrap=0)
        with pytest.raises(ValuescopeError, match=refused):
            sensitivity(same)
        with pytest.raises(ValuescopeError, match=refused):
            assemble(AssembleConfig(model="sim/citizen", out=out, **SMALL_ASSEMBLY))
        with pytest.raises(ValuescopeError, match=refused):
            vs("run", "sim/thurstone", "--out", str(out), "--overwrite", "-q")
        assert holder.poll() is None  # the holder was never disturbed
    finally:
        _stop(holder)
    # and a slow assembly holds its directory against a second assembly and a run
    other = tmp_path / "assembly"
    citizens = ("--citizens", "2", "--outcomes", "demo")
    holder = _start_holder(other, "control", "assemble", "sim/citizen?delay=0.5", *citizens)
    try:
        with pytest.raises(ValuescopeError, match="another run is in progress"):
            assemble(AssembleConfig(model="sim/citizen", out=other, **SMALL_ASSEMBLY))
        with pytest.raises(ValuescopeError, match="another run is in progress"):
            vs("run", "sim/thurstone", "--out", str(other), "--overwrite", "-q")
    finally:
        _stop(holder)


# -- --engine ray ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray", exc_type=ModuleNotFoundError)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.mark.slow  # a Ray start, as every Ray run; engine checks are fast (testing.md)
def test_sensitivity_on_ray_gives_the_local_answers(local_ray, tmp_path):
    args = ("sim/thurstone", "--outcomes", "demo", "--budget", "40", "--seed", "3", "-q")
    vs("sensitivity", *args, "--out", str(tmp_path / "local"))
    vs("sensitivity", *args, "--out", str(tmp_path / "ray"), "--engine", "ray")
    local = json.loads((tmp_path / "local/sensitivity.json").read_text())
    remote = json.loads((tmp_path / "ray/sensitivity.json").read_text())
    assert local == remote and remote["n_queries_new"] == remote["n_queries"] > 0
    assert cache_rows(tmp_path / "local/responses.sqlite") == cache_rows(
        tmp_path / "ray/responses.sqlite"
    )
    assert saved_config(tmp_path / "ray")["engine"] == "ray"


@pytest.mark.slow  # a Ray start, as every Ray run; engine checks are fast (testing.md)
def test_assembly_on_ray_gives_the_local_votes(local_ray, tmp_path):
    args = ["sim/citizen", "--outcomes", "demo", "--citizens", "3", "--pairs", "6", "-q"]
    vs("control", "assemble", *args, "--out", str(tmp_path / "local"))
    vs("control", "assemble", *args, "--out", str(tmp_path / "ray"), "--engine", "ray")
    for name in ("labels.csv", "votes.csv", "arguments.json"):
        assert (tmp_path / "local" / name).read_text() == (tmp_path / "ray" / name).read_text()
    assert cache_rows(tmp_path / "local/responses.sqlite") == cache_rows(
        tmp_path / "ray/responses.sqlite"
    )
    assert saved_config(tmp_path / "ray")["engine"] == "ray"


@pytest.mark.slow  # Ray end-to-end, as every Ray run; engine checks are fast
def test_analysis_sub_runs_on_ray_give_the_local_answers(local_ray, tmp_path):
    outcomes = [f"outcome {i}" for i in range(6)]
    for engine in ("local", "ray"):
        options = {"bootstrap": 0, "engine": engine}
        ctx = ExperimentContext(model="sim/thurstone", out=tmp_path / engine, run_options=options)
        ctx.measure("utilities", outcomes)
        ask_pairs(ctx, "choices", outcomes, np.array([[0, 1], [2, 3], [4, 5]]))
    for sub in ("utilities", "choices"):
        local, remote = tmp_path / "local" / sub, tmp_path / "ray" / sub
        assert saved_config(remote)["engine"] == "ray"
        assert cache_rows(local / "responses.sqlite") == cache_rows(remote / "responses.sqlite")
    local_table = (tmp_path / "local/utilities/utilities.csv").read_text()
    assert local_table == (tmp_path / "ray/utilities/utilities.csv").read_text()


@pytest.mark.slow  # a Ray start (11 s), as every Ray run; engine checks are fast
def test_ray_workers_answer_the_questions(local_ray, tmp_path):
    """Proof that Ray, not the driver, answers: workers build their own backend from the
    model string, so a driver backend of another seed is caught by the name check."""
    other = get_backend("sim/thurstone", seed=1)
    sensitivity(sensitivity_config(tmp_path / "local"), backend=other)  # local: it answers
    with pytest.raises(BackendError, match="cache keys would not match"):
        sensitivity(sensitivity_config(tmp_path / "ray", engine="ray"), backend=other)
    citizen = get_backend("sim/citizen", seed=1)
    config = AssembleConfig(model="sim/citizen", engine="ray", **SMALL_ASSEMBLY)
    with pytest.raises(BackendError, match="cache keys would not match"):
        assemble(config, backend=citizen)


def test_engine_settings_of_the_assembly_are_one_line_errors(cli, tmp_path):
    out = tmp_path / "assembly"
    result = cli("control", "assemble", "--out", str(out), "--engine", "spark")
    assert result.returncode == 1
    assert "--engine" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (out / "run_config.json").exists()
