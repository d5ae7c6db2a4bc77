"""`inspect/<provider>/<model>` through Inspect AI's model API, against the loopback server.

Inspect's OpenAI-compatible provider (`openai-api/<service>/<model>`) talks to the same
server as the native `openai/` backend; with the same server seed the two must give the
same utilities. Skipped only where inspect_ai is not installed (`pip install
'valuescope[inspect]'`; scripts/setup-dev.sh installs it).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import skip_module_without
from loopback_server import Faults, LoopbackServer

from valuescope.elicit.cache import query_key
from valuescope.elicit.prompts import get_template
from valuescope.errors import BackendError, UnknownModelError
from valuescope.models import Query, get_backend

skip_module_without("inspect_ai", reason="the inspect extra is not installed")

KEY = "sk-test-inspect-5e2a"
LOOP_KEY = "loop-service-key-77f1"
SEED = 13


@pytest.fixture(scope="module")
def server():
    with LoopbackServer(seed=SEED) as s:
        yield s


@pytest.fixture
def fresh(server):
    server.reset()
    yield server


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    for name in ("OPENAI_BASE_URL", "LOOP_BASE_URL", "LOOP_API_KEY"):
        monkeypatch.delenv(name, raising=False)


def queries(mode: str = "logprob", n: int = 8, samples: int = 1) -> list[Query]:
    t = get_template("default")
    texts = [f"thing {i} happens" for i in range(n + 1)]
    return [
        Query(t.render(a, b), a, b, mode=mode, sample_index=k)
        for a, b in zip(texts, texts[1:], strict=False)
        for k in range(samples)
    ]


def inspect_backend(server: LoopbackServer, model: str = "openai-api/loop/test-model", **kw):
    kw.setdefault("base_url", server.base_url)
    kw.setdefault("api_key_env", "OPENAI_API_KEY")
    return get_backend(f"inspect/{model}", **kw)


def native_backend(server: LoopbackServer):
    return get_backend("openai/test-model", base_url=server.base_url, api_key_env="OPENAI_API_KEY")


# -- in-process --------------------------------------------------------------------------
def test_logprob_answers_equal_the_native_backend(fresh):
    b = inspect_backend(fresh)
    assert b.supports_logprobs
    mine, native = b.answer(queries()), native_backend(fresh).answer(queries())
    assert [a.p_a for a in mine] == pytest.approx([a.p_a for a in native], abs=1e-12)
    assert [a.mass for a in mine] == pytest.approx([a.mass for a in native], abs=1e-12)
    assert [(a.tokens_in, a.tokens_out) for a in mine] == [
        (a.tokens_in, a.tokens_out) for a in native
    ]


def test_sample_answers_equal_the_native_backend(fresh):
    """The sample index goes out as the seed, as the native backend sends it."""
    qs = queries("sample", n=6, samples=3)
    mine = [a.text for a in inspect_backend(fresh).answer(qs)]
    assert mine == [a.text for a in native_backend(fresh).answer(qs)]
    assert set(mine) == {"A", "B"}


def test_key_goes_only_where_named(fresh):
    inspect_backend(fresh).answer(queries(n=1))
    assert fresh.stats.headers[-1]["Authorization"] == f"Bearer {KEY}"
    fresh.reset()
    inspect_backend(fresh, api_key_env=None).answer(queries(n=1))
    assert KEY not in json.dumps(fresh.stats.headers)  # --base-url without a named key


def test_service_variables_pick_url_and_key(fresh, monkeypatch):
    """Without --base-url, Inspect's own <SERVICE>_BASE_URL / <SERVICE>_API_KEY apply."""
    monkeypatch.setenv("LOOP_BASE_URL", fresh.base_url)
    monkeypatch.setenv("LOOP_API_KEY", LOOP_KEY)
    b = get_backend("inspect/openai-api/loop/test-model")
    assert b.base_url == fresh.base_url
    b.answer(queries(n=2))
    assert fresh.stats.headers[-1]["Authorization"] == f"Bearer {LOOP_KEY}"


def test_cache_key_has_provider_and_base_url(fresh, server):
    q = queries(n=1)[0]
    a = inspect_backend(fresh)
    other = get_backend(
        "inspect/openai-api/loop/test-model", base_url="http://127.0.0.1:9/v1", api_key_env=None
    )
    assert a.name == "inspect/openai-api/loop/test-model"
    keys = {
        query_key(a.name, q, a.base_url),
        query_key(other.name, q, other.base_url),
        query_key("openai/test-model", q, a.base_url),
    }
    assert len(keys) == 3


def test_provider_table_picks_the_mode(fresh, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-fake")
    assert not get_backend("inspect/anthropic/claude-sonnet-4-5").supports_logprobs
    assert not inspect_backend(fresh, "openai/o3-mini").supports_logprobs
    assert not inspect_backend(fresh, "openai-api/loop/test-model?logprobs=0").supports_logprobs


def test_reasoning_model_samples_within_its_rules(fresh):
    """o3-mini through Inspect: sample mode, no temperature, a completion-token limit."""
    t = get_template("reasoning")
    qs = [
        Query(t.render(q.option_a, q.option_b), q.option_a, q.option_b, "sample", k, 0.7, 256)
        for q in queries(n=4)
        for k in range(2)
    ]
    fresh.reasoning_rules = True
    try:
        b = inspect_backend(fresh, "openai-api/loop/o3-mini")
        assert b.reasoning and not b.supports_logprobs
        mine = [a.text for a in b.answer(qs)]
        native = get_backend(
            "openai/o3-mini", base_url=fresh.base_url, api_key_env="OPENAI_API_KEY"
        )
        assert mine == [a.text for a in native.answer(qs)]
    finally:
        fresh.reasoning_rules = False
    assert all(text.splitlines()[-1].startswith("Answer: ") for text in mine)


def test_server_without_logprobs_is_one_clear_error(fresh):
    no_logprobs = r"no log-probabilities; use .*\?logprobs=0"
    with (
        LoopbackServer(seed=1, logprobs=False) as bare,
        pytest.raises(BackendError, match=no_logprobs),
    ):
        inspect_backend(bare).answer(queries(n=2))


def test_inspect_retries_pass_through(fresh):
    fresh.reset(Faults(script=["500", "500"]))
    answers = inspect_backend(fresh, max_retries=3).answer(queries(n=1))
    assert answers[0].p_a is not None
    assert fresh.stats.faults["500"] == 2


def test_retries_exhausted_keep_partial_answers(fresh):
    fresh.reset(Faults(fail_after=3, after_kind="400"))
    with pytest.raises(BackendError, match="were kept") as info:
        inspect_backend(fresh, max_retries=0, concurrency=1).answer(queries(n=6))
    assert len(info.value.partial) == 3


def test_stream_yields_every_answer_once(fresh):
    qs = queries(n=10)
    # Inspect keeps one connection limit per model and endpoint for the whole process,
    # set by the first backend built for it: a model name no other test uses gets its own
    b = inspect_backend(fresh, "openai-api/loop3/test-model", concurrency=3)
    got = [pair for chunk in b.answer_stream(qs) for pair in chunk]
    assert sorted(i for i, _ in got) == list(range(len(qs)))
    by_position = dict(got)
    assert [by_position[i].p_a for i in range(len(qs))] == [a.p_a for a in b.answer(qs)]
    assert fresh.stats.max_in_flight <= 3


def test_stream_failure_keeps_what_arrived(fresh):
    fresh.reset(Faults(fail_after=4, after_kind="400"))
    yielded: list = []
    b = inspect_backend(fresh, max_retries=0, concurrency=1)
    with pytest.raises(BackendError, match="4 of the 8 answers") as info:
        for chunk in b.answer_stream(queries(n=8)):
            yielded += chunk
    assert len(yielded) + len(info.value.partial) == 4


def test_failure_shows_the_server_error_without_the_key(fresh):
    fresh.reset(Faults(script=["400"]))  # the server echoes the Authorization header
    with pytest.raises(BackendError) as info:
        inspect_backend(fresh, max_retries=0).answer(queries(n=1))
    message = str(info.value)
    assert "injected 400" in message and "Bearer ***" in message
    assert KEY not in message and '"messages"' not in message and "\n" not in message


@pytest.mark.parametrize(
    ("model", "match"),
    [
        ("inspect/gpt-4o", "inspect/<provider>/<model>"),
        ("inspect/nosuch/model", "not recognized"),
        ("inspect/openai-api/loop/m?bogus=1", "no parameter 'bogus'"),
    ],
)
def test_bad_model_strings(model, match):
    with pytest.raises(UnknownModelError, match=match):
        get_backend(model)


def test_missing_provider_key_names_the_variable(monkeypatch):
    with pytest.raises(UnknownModelError, match="LOOP_API_KEY") as info:
        get_backend("inspect/openai-api/loop/test-model")
    assert "[bold]" not in str(info.value) and "\n" not in str(info.value)


# -- a whole run through the CLI ---------------------------------------------------------
def cli(server: LoopbackServer, model: str, out: Path, *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OPENAI_API_KEY=KEY, OPENAI_BASE_URL=server.base_url, COLUMNS="200")
    args = ["run", model, "--base-url", server.base_url, "--api-key-env", "OPENAI_API_KEY"]
    args += ["--outcomes", "demo", "--bootstrap", "0", "--seed", "3", "--out", str(out), *extra]
    return subprocess.run(
        [sys.executable, "-m", "valuescope.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


@pytest.mark.slow
def test_failed_run_resumes_asking_only_what_is_missing(fresh, tmp_path):
    out = tmp_path / "resume"
    fresh.reset(Faults(fail_after=30, after_kind="400"))
    proc = cli(fresh, "inspect/openai-api/loop/test-model", out, "--max-retries", "0")
    assert proc.returncode != 0
    assert "rerun the same command to resume" in proc.stderr
    assert "Traceback" not in proc.stderr
    with sqlite3.connect(out / "responses.sqlite") as conn:
        (kept,) = conn.execute("SELECT COUNT(*) FROM responses").fetchone()
    assert kept == 30
    fresh.reset()
    proc = cli(fresh, "inspect/openai-api/loop/test-model", out, "--max-retries", "0")
    assert proc.returncode == 0, proc.stderr[-2000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert fresh.stats.requests == metrics["n_queries"] - 30 == metrics["n_queries_new"]


@pytest.mark.slow
def test_run_through_inspect_gives_the_native_utilities(fresh, tmp_path):
    native = tmp_path / "native"
    proc = cli(fresh, "openai/test-model", native)
    assert proc.returncode == 0, proc.stderr[-2000:]
    n_native = fresh.stats.n_answered
    fresh.reset()
    via = tmp_path / "inspect"
    proc = cli(fresh, "inspect/openai-api/loop/test-model", via)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert fresh.stats.n_answered == n_native
    a = pd.read_csv(native / "utilities.csv").set_index("id")
    b = pd.read_csv(via / "utilities.csv").set_index("id")
    pd.testing.assert_series_equal(a["mean"], b["mean"], rtol=0, atol=1e-9)
    metrics = json.loads((via / "metrics.json").read_text())
    assert metrics["mode"] == "logprob" and metrics["model"].startswith("inspect/openai-api/")
    assert metrics["n_queries"] == n_native
    assert metrics["tokens_in"] == json.loads((native / "metrics.json").read_text())["tokens_in"]
    # resume: the same command again asks the server nothing
    fresh.reset()
    proc = cli(fresh, "inspect/openai-api/loop/test-model", via)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert fresh.stats.requests == 0
    with sqlite3.connect(via / "responses.sqlite") as conn:
        models = {m for (m,) in conn.execute("SELECT DISTINCT model FROM responses")}
    assert models == {"inspect/openai-api/loop/test-model"}
