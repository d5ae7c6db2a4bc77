"""The Ray engine on a local Ray instance (num_cpus=2), and the vLLM backend where it can run.

Every run here is real: Ray actors build real backends (sim agents, the embedded
SmolLM2-135M through llama.cpp, the OpenAI client against the loopback HTTP server) and
the driver writes their answers to a real SQLite cache.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import skip_module_without

skip_module_without("ray", reason='ray is not installed: pip install "valuescope[ray]"')

from loopback_server import Faults, LoopbackServer  # noqa: E402

from valuescope.cli import app  # noqa: E402
from valuescope.elicit import ElicitSettings, ResponseCache, get_template  # noqa: E402
from valuescope.elicit.elicit import ask, build_queries  # noqa: E402
from valuescope.engine import check_engine, make_engine  # noqa: E402
from valuescope.engine.ray_engine import RayEngine, query_from_json, query_to_json  # noqa: E402
from valuescope.errors import (  # noqa: E402
    BackendError,
    MissingDependencyError,
    UnknownModelError,
    ValuescopeError,
)
from valuescope.models import get_backend  # noqa: E402
from valuescope.outcomes import load_outcomes  # noqa: E402

KEY = "sk-test-loopback-ray-3b9e"
HAS_LLAMA = importlib.util.find_spec("llama_cpp") is not None


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance for the module; workers see a fake OpenAI key."""
    old = os.environ.get("OPENAI_API_KEY")
    os.environ["OPENAI_API_KEY"] = KEY  # the raylet passes its environment to workers
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
    if old is None:
        os.environ.pop("OPENAI_API_KEY", None)
    else:
        os.environ["OPENAI_API_KEY"] = old


def vs(*args: str) -> None:
    """`valuescope ARGS` in this process (it joins the module's Ray instance)."""
    app(list(args), standalone_mode=False)


def run_args(model: str, out: Path, *extra: str) -> list[str]:
    return ["run", model, "--out", str(out), "--bootstrap", "0", "-q", *extra]


def utilities(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "utilities.csv")


def cache_rows(path: Path) -> dict[str, str]:
    with sqlite3.connect(path) as conn:
        return dict(conn.execute("SELECT key, answer FROM responses").fetchall())


def metrics(out: Path) -> dict:
    return json.loads((out / "metrics.json").read_text())


# -- same utilities as the local engine ------------------------------------------------------
@pytest.mark.slow  # a Ray start (18 s of wall); engine settings and query JSON are fast
def test_ray_run_matches_local_run_sim(local_ray, tmp_path):
    args = ("--outcomes", "demo", "--seed", "5", "--budget", "80")
    vs(*run_args("sim/thurstone", tmp_path / "local", *args))
    vs(*run_args("sim/thurstone", tmp_path / "ray", *args, "--engine", "ray"))
    local, remote = utilities(tmp_path / "local"), utilities(tmp_path / "ray")
    np.testing.assert_array_equal(local["mean"], remote["mean"])
    np.testing.assert_array_equal(local["sigma"], remote["sigma"])
    assert cache_rows(tmp_path / "local/responses.sqlite") == cache_rows(
        tmp_path / "ray/responses.sqlite"
    )
    saved = json.loads((tmp_path / "ray/run_config.json").read_text())
    assert saved["engine"] == "ray"
    assert metrics(tmp_path / "ray")["n_queries_new"] == metrics(tmp_path / "ray")["n_queries"]


@pytest.mark.slow
@pytest.mark.skipif(not HAS_LLAMA, reason="llama-cpp-python is not installed")
def test_ray_run_matches_local_run_embedded(local_ray, tmp_path):
    """The acceptance run: the shipped small model, local engine vs Ray engine."""
    ten = tmp_path / "ten.txt"
    ten.write_text("\n".join(load_outcomes("demo").texts[:10]) + "\n", encoding="utf-8")
    args = ("--outcomes", str(ten), "--budget", "20", "--seed", "1")
    model = "embedded/smollm2-135m"
    vs(*run_args(model, tmp_path / "local", *args))
    vs(*run_args(model, tmp_path / "ray", *args, "--engine", "ray"))
    local, remote = utilities(tmp_path / "local"), utilities(tmp_path / "ray")
    np.testing.assert_allclose(local["mean"], remote["mean"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(local["sigma"], remote["sigma"], rtol=0, atol=1e-9)
    answers_local = cache_rows(tmp_path / "local/responses.sqlite")
    answers_ray = cache_rows(tmp_path / "ray/responses.sqlite")
    assert len(answers_ray) == metrics(tmp_path / "ray")["n_queries"] > 0
    assert answers_local == answers_ray  # the same P(A) for every query, to the last bit


# -- resume either way -------------------------------------------------------------------------
@pytest.mark.slow  # Ray end-to-end, as every Ray run; engine checks are fast
def test_resume_moves_between_engines(local_ray, tmp_path):
    common = ("--outcomes", "demo", "--seed", "2")
    reference = tmp_path / "reference"
    vs(*run_args("sim/thurstone", reference, *common))
    # a local run with a smaller budget asks part of the same pairs (same seed, same start)
    mixed = tmp_path / "mixed"
    vs(*run_args("sim/thurstone", mixed, *common, "--budget", "36"))
    part = len(cache_rows(mixed / "responses.sqlite"))
    # ... then the full run on Ray replaces it (other settings: --overwrite) and, since the
    # cache survives --overwrite, asks only what is missing
    vs(*run_args("sim/thurstone", mixed, *common, "--engine", "ray", "--overwrite"))
    m = metrics(mixed)
    assert m["n_queries_cached"] == part > 0
    assert m["n_queries_new"] == m["n_queries"] - part > 0
    np.testing.assert_array_equal(utilities(reference)["mean"], utilities(mixed)["mean"])
    # and back: resume the Ray run locally, nothing left to ask
    vs("run", "--out", str(mixed), "--resume", "--engine", "local", "-q")
    assert metrics(mixed)["n_queries_new"] == 0
    assert json.loads((mixed / "run_config.json").read_text())["engine"] == "local"
    np.testing.assert_array_equal(utilities(reference)["mean"], utilities(mixed)["mean"])


# -- failures: no answer is lost ------------------------------------------------------------------
@pytest.mark.slow  # Ray end-to-end; local failures are in test_api_backends.py
def test_backend_failure_on_workers_keeps_every_answer(local_ray, tmp_path):
    texts = load_outcomes("demo").texts
    pairs = np.array([(i, (i + 7) % 36) for i in range(36)])
    queries = build_queries(texts, pairs, get_template("default"), ElicitSettings())
    with LoopbackServer(seed=0, latency=0.002) as server:
        server.reset(Faults(fail_after=30, after_kind="500"), latency=0.002)
        options = {"base_url": server.base_url, "max_retries": 0, "concurrency": 4}
        backend = get_backend("openai/test-model", **options)
        engine = RayEngine("openai/test-model", options, workers=2)
        try:
            with ResponseCache(tmp_path / "c.sqlite") as cache:
                with pytest.raises(BackendError, match="HTTP 500"):
                    ask(backend, queries, cache, batch_size=8, engine=engine)
                saved = cache.count()
                assert saved == server.stats.n_answered >= 30  # every answer that came is kept
                server.reset(latency=0.002)  # the server recovers: only the rest is asked
                answers, n_new = ask(backend, queries, cache, batch_size=8, engine=engine)
                assert n_new == server.stats.n_answered == len(queries) - saved
                assert cache.count() == len(queries)
                assert all(a.p_a is not None for a in answers)
        finally:
            engine.close()


@pytest.mark.slow  # a Ray cluster start
def test_worker_that_cannot_build_the_backend_is_one_clear_error(local_ray, tmp_path):
    texts = load_outcomes("demo").texts
    queries = build_queries(texts, np.array([[0, 1]]), get_template("default"), ElicitSettings())
    backend = get_backend("sim/thurstone", seed=0)
    engine = RayEngine("sim/thurstone", {"seed": 1}, workers=1)  # seed 1 names another model
    try:
        with ResponseCache(tmp_path / "c.sqlite") as cache:
            with pytest.raises(BackendError, match="cache keys would not match") as info:
                ask(backend, queries, cache, engine=engine)
            assert "\n" not in str(info.value)
            assert cache.count() == 0
    finally:
        engine.close()


# -- the Ray Data strategy -------------------------------------------------------------------------
@pytest.mark.slow
def test_ray_data_strategy_gives_the_local_answers(local_ray, tmp_path):
    texts = load_outcomes("demo").texts
    pairs = np.array([(i, (i + 5) % 36) for i in range(36)])
    queries = build_queries(texts, pairs, get_template("default"), ElicitSettings())
    backend = get_backend("sim/thurstone", seed=3)
    engine = RayEngine("sim/thurstone", {"seed": 3}, workers=2, strategy="data")
    try:
        with ResponseCache(tmp_path / "c.sqlite") as cache:
            answers, n_new = ask(backend, queries, cache, batch_size=16, engine=engine)
            assert n_new == len(queries) == cache.count()
    finally:
        engine.close()
    assert [a.p_a for a in answers] == [a.p_a for a in backend.answer(queries)]


def test_query_json_round_trip():
    t = get_template("default")
    texts = load_outcomes("demo").texts
    [q, *_] = build_queries(texts, np.array([[0, 1]]), t, ElicitSettings(persona="a nurse"))
    assert query_from_json(query_to_json(q)) == q


# -- settings and missing dependencies ----------------------------------------------------------
def test_engine_settings_are_checked():
    with pytest.raises(ValuescopeError, match="unknown engine 'spark'"):
        check_engine("spark")
    with pytest.raises(ValuescopeError, match="ray workers must be at least 1"):
        make_engine("ray", "sim/thurstone", {}, ray_workers=0)
    with pytest.raises(ValuescopeError, match="--ray-workers"):
        vs("run", "--engine", "ray", "--ray-workers", "0", "-q")


def test_missing_ray_is_one_line_with_the_pip_command(tmp_path):
    code = (
        "import sys; sys.modules['ray'] = None; from valuescope.cli import main; "
        f"sys.argv = ['valuescope', 'run', '--engine', 'ray', '--out', {str(tmp_path)!r}]; main()"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: --engine ray needs Ray"), proc.stderr
    assert 'pip install "valuescope[ray]"' in lines[0]
    assert not (tmp_path / "responses.sqlite").exists()  # refused before anything was written


# -- vLLM ----------------------------------------------------------------------------------
def _vllm_usable() -> bool:
    if importlib.util.find_spec("vllm") is None:
        return False
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


@pytest.mark.skipif(not _vllm_usable(), reason="vllm not installed / no GPU")
def test_vllm_backend_answers_in_both_modes(tmp_path):
    model = os.environ.get("VALUESCOPE_VLLM_MODEL", "HuggingFaceTB/SmolLM2-135M-Instruct")
    backend = get_backend(f"vllm/{model}?prefill=I%20would%20prefer%20Option")
    texts = load_outcomes("demo").texts
    pairs = np.array([(i, (i + 1) % 36) for i in range(36)])
    logprob = build_queries(texts, pairs, get_template("default"), ElicitSettings())
    answers = backend.answer(logprob)
    assert all(0 <= a.p_a <= 1 and 0 < a.mass <= 1 + 1e-6 for a in answers)
    assert [a.p_a for a in backend.answer(logprob[:8])] == pytest.approx(
        [a.p_a for a in answers[:8]], abs=1e-3
    )
    sample = build_queries(
        texts, pairs[:4], get_template("default"), ElicitSettings(mode="sample", samples=2)
    )
    first, again = backend.answer(sample), backend.answer(sample)
    assert [a.text for a in first] == [a.text for a in again]


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed here")
def test_vllm_missing_is_a_clear_error():
    with pytest.raises(MissingDependencyError, match=r'pip install "valuescope\[vllm\]"'):
        get_backend("vllm/HuggingFaceTB/SmolLM2-135M-Instruct")


def test_vllm_parameters_are_checked_before_loading():
    with pytest.raises(UnknownModelError, match="no parameter 'temp'"):
        get_backend("vllm/some/model?temp=1")
    with pytest.raises(UnknownModelError, match="parameter tp: expected a number at least 1"):
        get_backend("vllm/some/model?tp=0")
