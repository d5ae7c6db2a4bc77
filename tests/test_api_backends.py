"""API backends against a real HTTP server on 127.0.0.1 (see loopback_server.py).

CLI runs go through the real entry point in this process (conftest's `invoke_cli`), a
run killed mid-way through a real subprocess; unit tests drive the backends directly.
Every request goes to 127.0.0.1: each CLI run's environment also points OPENAI_BASE_URL
at the loopback server, so a run never reaches a real API.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import invoke_cli
from loopback_server import RETRYABLE_KINDS, Faults, LoopbackServer, prompt_key
from scipy.stats import spearmanr

from valuescope.elicit.prompts import get_template
from valuescope.errors import BackendError, UnknownModelError, ValuescopeError
from valuescope.models import Query, get_backend
from valuescope.models._http import HttpOptions, backoff_delay, retry_after_seconds
from valuescope.models.anthropic_api import messages_payload
from valuescope.models.openai_api import OpenAIBackend, choice_probabilities
from valuescope.outcomes import load_outcomes

KEY = "sk-test-loopback-7d1f0c9e4b2a"
ANTHROPIC_KEY = "sk-ant-" + "test-loopback-52c8e1"  # fake; split so scanners do not flag it
AGENT_SEED = 11
RUN_FILES = ("utilities.csv", "metrics.json", "responses.sqlite", "report.html")


# -- fixtures and helpers ----------------------------------------------------------------
@pytest.fixture(scope="module")
def server():
    with LoopbackServer(seed=AGENT_SEED, latency=0.005) as s:
        yield s


@pytest.fixture
def fresh(server):
    """The shared server with clean statistics and no faults."""
    server.reset(latency=0.005)
    yield server
    server.reset(latency=0.005)


def cli_env(server: LoopbackServer) -> dict[str, str]:
    env = dict(os.environ, PYTHONWARNINGS="ignore", COLUMNS="200", OPENAI_API_KEY=KEY)
    env["OPENAI_BASE_URL"] = server.base_url  # safety net: never a real API
    return env


def run_args(server: LoopbackServer, out: Path, *extra: str) -> list[str]:
    """A run of the demo set; no bootstrap (it would cost 10x the CPU of the rest)."""
    base = ["run", "openai/test-model", "--base-url", server.base_url, "--outcomes", "demo"]
    # a loopback host gets a key only when named (docs/backends-api.md, "API keys")
    base += ["--api-key-env", "OPENAI_API_KEY"]
    return [*base, "--out", str(out), "--bootstrap", "0", *extra]


def vs(server: LoopbackServer, args: list[str]) -> subprocess.CompletedProcess:
    """`valuescope ARGS` in this process, its key and base URL those of the loopback server."""
    return invoke_cli(*args, env={"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": server.base_url})


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def rows(path: Path) -> list[tuple]:
    """(key, mode, sample_index, prompt, answer) rows of a response cache."""
    with sqlite3.connect(path) as conn:
        return conn.execute(
            "SELECT key, mode, sample_index, prompt, answer FROM responses"
        ).fetchall()


def server_key(mode: str, sample_index: int, prompt: str) -> tuple:
    """The loopback server's name for the prompt of a cache row."""
    messages = json.loads(prompt)
    user = next(content for role, content in reversed(messages) if role == "user")
    return prompt_key(user, mode, sample_index)


def truth_spearman(server: LoopbackServer, out: Path) -> float:
    utilities = pd.read_csv(out / "utilities.csv")
    truth = server.truth(list(utilities["outcome"]))
    return float(spearmanr(utilities["mean"], truth["mean"])[0])


def check_saved_settings(server: LoopbackServer, out: Path, **expected) -> None:
    saved = json.loads((out / "run_config.json").read_text())
    assert saved["base_url"] == server.base_url, (
        "valuescope run ignored --base-url (and the other backend flags): cli.py must pass "
        "base_url, concurrency, timeout, max_retries and rate_limit on to RunConfig"
    )
    for name, value in expected.items():
        assert saved[name] == value, name


def queries(
    n: int, mode: str = "logprob", samples: int = 1, template: str = "default"
) -> list[Query]:
    texts = load_outcomes("demo").texts
    t = get_template(template)
    out = []
    for i in range(n):
        a, b = texts[i % len(texts)], texts[(3 * i + 1) % len(texts)]
        for k in range(samples):
            out.append(Query(t.render(a, b), a, b, mode=mode, sample_index=k, labels=t.labels))
    return out


def openai(server: LoopbackServer, model: str = "openai/test-model", **options):
    options.setdefault("base_url", server.base_url)
    options.setdefault("api_key_env", "OPENAI_API_KEY")  # loopback gets a key only if named
    return get_backend(model, **options)


@pytest.fixture(autouse=True)
def _keys(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)


# -- (a) full runs through the CLI -------------------------------------------------------
@pytest.fixture(scope="module")
def logprob_run(server, tmp_path_factory):
    """One default logprob-mode run; later tests compare against it."""
    server.reset(latency=0.005)
    out = tmp_path_factory.mktemp("api") / "logprob"
    started = time.perf_counter()
    proc = ok(vs(server, run_args(server, out)))
    result = {
        "out": out,
        "proc": proc,
        "seconds": time.perf_counter() - started,
        "answered": server.stats.answered.copy(),
        "headers": list(server.stats.headers),
    }
    server.reset()
    return result


def test_logprob_run_recovers_the_server_agent(server, logprob_run):
    out = logprob_run["out"]
    for name in RUN_FILES:
        assert (out / name).exists(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["mode"] == "logprob" and metrics["backend"] == "openai/test-model"
    assert len(rows(out / "responses.sqlite")) == metrics["n_queries"]
    assert sum(logprob_run["answered"].values()) == metrics["n_queries"]
    assert max(logprob_run["answered"].values()) == 1
    assert metrics["refusal_rate"] == 0
    assert metrics["tokens_in"] > 0 and metrics["tokens_out"] == metrics["n_queries"]
    assert truth_spearman(server, out) > 0.95
    check_saved_settings(server, out)


@pytest.mark.report
def test_sample_run_with_prices(fresh, tmp_path):
    out = tmp_path / "sample"
    model = "openai/test-model?price_in=1.5&price_out=6"
    args = ["run", model, "--base-url", fresh.base_url, "--outcomes", "demo", "--out", str(out)]
    args += ["--mode", "sample", "--samples", "3", "--design", "random", "--bootstrap", "0"]
    ok(vs(fresh, [*args, "-q"]))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["mode"] == "sample" and metrics["refusal_rate"] == 0
    assert len(rows(out / "responses.sqlite")) == metrics["n_queries"] == fresh.stats.n_answered
    assert max(fresh.stats.answered.values()) == 1
    expected = (metrics["tokens_in"] * 1.5 + metrics["tokens_out"] * 6) / 1e6
    assert metrics["cost_usd"] == pytest.approx(expected) and expected > 0
    assert 0.4 < metrics["position_bias"] < 0.6
    assert truth_spearman(fresh, out) > 0.9
    for name in RUN_FILES:
        assert (out / name).exists(), name


# -- (b) transient faults are retried ----------------------------------------------------
@pytest.mark.slow  # 3 s server stalls (5 s); each fault kind is retried fast below
def test_run_survives_mixed_faults(fresh, tmp_path):
    fresh.reset(Faults(rate=0.2, retry_after=0.3, slow_seconds=3, seed=1), latency=0.005)
    out = tmp_path / "faults"
    extra = ["--timeout", "1", "--concurrency", "64", "--design", "random", "--batch-size", "1000"]
    ok(vs(fresh, [*run_args(fresh, out, *extra), "-q"]))
    check_saved_settings(fresh, out, timeout=1.0, concurrency=64)
    metrics = json.loads((out / "metrics.json").read_text())
    cached = rows(out / "responses.sqlite")
    assert len(cached) == len({r[0] for r in cached}) == metrics["n_queries"]
    assert metrics["refusal_rate"] == 0
    assert fresh.stats.n_answered == metrics["n_queries"]
    assert max(fresh.stats.answered.values()) == 1  # nothing was answered twice
    assert set(fresh.stats.faults) == set(RETRYABLE_KINDS), fresh.stats.faults
    assert sum(fresh.stats.faults.values()) > 0.1 * metrics["n_queries"]
    assert truth_spearman(fresh, out) > 0.9


# -- (c) past the retry budget: one clear error, and a rerun asks only what is missing ---
def test_retry_budget_exhausted_then_rerun_resumes(fresh, tmp_path):
    fresh.reset(Faults(fail_after=150, after_kind="503"), latency=0.005)
    out = tmp_path / "down"
    args = run_args(fresh, out, "--max-retries", "2", "--design", "random")
    failed = vs(fresh, args)
    check_saved_settings(fresh, out, max_retries=2)
    assert failed.returncode == 1
    assert "Traceback" not in failed.stderr
    errors = [line for line in failed.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, failed.stderr
    assert "HTTP 503" in errors[0] and "rerun the same command to resume" in errors[0]
    assert "gave up after 3 attempts" in errors[0]
    assert KEY not in failed.stderr + failed.stdout
    saved = rows(out / "responses.sqlite")
    assert len(saved) == fresh.stats.n_answered > 0  # every answer that arrived was kept
    first = fresh.stats.answered.copy()

    fresh.reset(latency=0.005)  # the server recovers
    ok(vs(fresh, args))
    metrics = json.loads((out / "metrics.json").read_text())
    assert fresh.stats.n_answered == metrics["n_queries"] - len(saved)
    assert not set(first) & set(fresh.stats.received)  # nothing asked twice
    assert len(rows(out / "responses.sqlite")) == metrics["n_queries"]


# -- (d) kill -9 and --resume ------------------------------------------------------------
def test_killed_run_resumes_to_the_same_answers(fresh, logprob_run, tmp_path):
    fresh.reset(latency=0.02)
    out = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "valuescope.cli", *run_args(fresh, out, "--concurrency", "4")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=cli_env(fresh),
    )
    deadline = time.time() + 60
    while fresh.stats.n_answered < 250 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "metrics.json").exists(), "the run finished before it was killed"
    cached = {server_key(*r[1:4]) for r in rows(out / "responses.sqlite")}
    assert cached, "nothing was saved before the kill"

    fresh.reset(latency=0.005)
    ok(vs(fresh, ["run", "--resume", "--out", str(out), "-q"]))
    assert not cached & set(fresh.stats.received), "a cached prompt was asked again"
    assert max(fresh.stats.answered.values()) == 1
    resumed = {(r[0], r[4]) for r in rows(out / "responses.sqlite")}
    whole = {(r[0], r[4]) for r in rows(logprob_run["out"] / "responses.sqlite")}
    assert resumed == whole
    pd.testing.assert_frame_equal(
        pd.read_csv(out / "utilities.csv")[["id", "mean"]],
        pd.read_csv(logprob_run["out"] / "utilities.csv")[["id", "mean"]],
    )


# -- (e) the API key never leaves the request headers ------------------------------------
def test_api_key_only_in_the_authorization_header(logprob_run):
    out, proc = logprob_run["out"], logprob_run["proc"]
    secret = KEY.encode()
    for path in out.iterdir():
        if path.is_file():
            assert secret not in path.read_bytes(), path.name
    assert KEY not in proc.stdout and KEY not in proc.stderr
    headers = logprob_run["headers"]
    assert headers and all(h["Authorization"] == f"Bearer {KEY}" for h in headers)
    assert not [v for h in headers for k, v in h.items() if KEY in v and k != "Authorization"]


def test_key_errors_name_the_variable_not_the_key(fresh):
    fresh.reset(Faults(script=["401"]))
    with pytest.raises(BackendError, match="OPENAI_API_KEY") as info:
        openai(fresh, concurrency=1).answer(queries(1))
    assert KEY not in str(info.value) and fresh.stats.requests == 1  # no retry
    fresh.reset(Faults(script=["400"]))  # the server echoes the Authorization header
    with pytest.raises(BackendError, match="HTTP 400") as info:
        openai(fresh, concurrency=1).answer(queries(1))
    assert KEY not in str(info.value) and "***" in str(info.value)
    backend = openai(fresh)
    assert KEY not in repr(backend) + backend.name + str(vars(backend))


def test_missing_key_is_an_error_only_for_the_official_api(fresh, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(ValuescopeError, match="set the OPENAI_API_KEY environment variable"):
        get_backend("openai/gpt-4o-mini")
    answers = openai(fresh, api_key_env=None).answer(queries(2))
    assert len(answers) == 2
    assert "Authorization" not in fresh.stats.headers[0]  # no key at all, not a placeholder


# -- (f) unit level: retries, limits, parsing --------------------------------------------
def test_retry_honours_retry_after(fresh):
    fresh.reset(Faults(script=["429", "ok"], retry_after=1.0))
    started = time.perf_counter()
    [answer] = openai(fresh, concurrency=1).answer(queries(1))
    elapsed = time.perf_counter() - started
    assert 1.0 <= elapsed < 2.0
    assert fresh.stats.requests == 2 and answer.p_a is not None


@pytest.mark.parametrize("kind", ["500", "503", "drop", "malformed", "slow", "429"])
def test_each_transient_fault_is_retried(fresh, kind):
    fresh.reset(Faults(script=[kind, "ok"], retry_after=0.1, slow_seconds=1.0))
    options = HttpOptions(concurrency=1, timeout=0.3, backoff_base=0.05)
    backend = OpenAIBackend("test-model", base_url=fresh.base_url, options=options)
    [answer] = backend.answer(queries(1))
    assert answer.mass == pytest.approx(0.9)
    assert fresh.stats.requests == 2 and fresh.stats.n_answered == 1


def test_answer_inside_a_running_event_loop(fresh):
    import asyncio

    async def notebook_cell():
        return openai(fresh).answer(queries(3))

    assert len(asyncio.run(notebook_cell())) == 3


def test_concurrency_limit(fresh):
    fresh.reset(latency=0.05)
    answers = openai(fresh, concurrency=5).answer(queries(40))
    assert len(answers) == 40
    assert fresh.stats.max_in_flight == 5


def test_rate_limit(fresh):
    started = time.perf_counter()
    openai(fresh, concurrency=16, rate_limit=20).answer(queries(25))
    elapsed = time.perf_counter() - started
    arrivals = fresh.stats.arrivals
    assert elapsed >= 24 / 20 - 0.05
    assert arrivals[-1] - arrivals[0] >= 24 / 20 - 0.1
    # no burst: at most 20 requests + 1 at the edge in any second (2 of slack for jitter)
    assert max(sum(1 for t in arrivals if s <= t < s + 1) for s in arrivals) <= 23


def test_exhausted_retries_keep_partial_answers(fresh):
    fresh.reset(Faults(fail_after=10, after_kind="500"))
    backend = openai(fresh, concurrency=4, max_retries=1)
    with pytest.raises(BackendError) as info:
        backend.answer(queries(30))
    message = str(info.value)
    assert "\n" not in message and "HTTP 500" in message and "rerun the same command" in message
    partial = info.value.partial
    assert len(partial) == fresh.stats.n_answered == 10
    assert all(a.p_a is not None for _, a in partial)
    assert len({i for i, _ in partial}) == 10


def test_unknown_model_fails_at_once(fresh):
    fresh.reset(Faults(script=["404"]))
    with pytest.raises(BackendError, match="openai/nope.*not found"):
        openai(fresh, "openai/nope", concurrency=1).answer(queries(1))
    assert fresh.stats.requests == 1


@pytest.mark.parametrize("template", ["default", "labels-12", "paraphrase-choice"])
def test_logprob_answers_match_the_agent(fresh, template):
    qs = queries(20, template=template)
    answers = openai(fresh).answer(qs)
    for q, a in zip(qs, answers):
        assert a.p_a == pytest.approx(fresh.agent.p_first(q.option_a, q.option_b))
        assert a.mass == pytest.approx(0.9)
        assert a.tokens_in > 0 and a.tokens_out == 1


def test_server_without_logprobs():
    with LoopbackServer(logprobs=False) as plain:
        with pytest.raises(BackendError, match=r"openai/test-model\?logprobs=0"):
            openai(plain, max_retries=0).answer(queries(1))
        backend = openai(plain, "openai/test-model?logprobs=0")
        assert backend.supports_logprobs is False
        answers = backend.answer(queries(3, mode="sample", samples=2))
        assert {a.text for a in answers} <= {"A", "B"}


def test_choice_probabilities_sum_variants():
    p_a, mass = choice_probabilities({"A": -1.0, " A": -2.0, "B": -1.5, "\n": -0.5, "Option": -3})
    a, b = math.exp(-1) + math.exp(-2), math.exp(-1.5)
    assert p_a == pytest.approx(a / (a + b)) and mass == pytest.approx(a + b)
    assert choice_probabilities({"I": -0.1, "The": -2.5}) == (0.5, 0.0)
    p_1, mass = choice_probabilities({" 1": -1.0, "2": -1.0, "A": 0.0}, ("1", "2"))
    assert p_1 == pytest.approx(0.5) and mass == pytest.approx(2 / math.e)


def test_model_parameters_and_names(monkeypatch):
    backend = get_backend(
        "openai/test-model?price_in=2.5&price_out=10", base_url="http://u:pw@127.0.0.1:9/v1/"
    )
    assert backend.name == "openai/test-model" and backend.prices == (2.5, 10.0)
    assert backend.base_url == "http://127.0.0.1:9/v1" and backend.supports_logprobs
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    assert get_backend("openai/meta-llama/Llama-3-8B").base_url == "http://127.0.0.1:9/v1"
    with pytest.raises(UnknownModelError, match="no parameter 'temperature'"):
        get_backend("openai/x?temperature=0", base_url="http://127.0.0.1:9/v1")
    with pytest.raises(UnknownModelError, match="both price_in and price_out"):
        get_backend("openai/x?price_in=1", base_url="http://127.0.0.1:9/v1")
    with pytest.raises(ValuescopeError, match="not an http"):
        get_backend("openai/x", base_url="localhost:8000")


def test_retry_after_and_backoff():
    assert retry_after_seconds({"retry-after": "2"}) == 2.0
    assert retry_after_seconds({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert retry_after_seconds({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert retry_after_seconds({}) is None
    assert retry_after_seconds({"retry-after": "nan"}) is None
    opts = HttpOptions(backoff_base=0.5, backoff_max=4)
    for attempt, ceiling in [(0, 0.5), (1, 1.0), (2, 2.0), (5, 4.0)]:
        delay = backoff_delay(attempt, opts)
        assert ceiling / 2 <= delay <= ceiling
    assert 3.0 <= backoff_delay(0, opts, retry_after=3.0) <= 3.3


# -- anthropic/ against the same server's Messages API -----------------------------------
def test_anthropic_backend(fresh):
    backend = get_backend(
        "anthropic/claude-test", base_url=fresh.url, concurrency=8, api_key_env="ANTHROPIC_API_KEY"
    )
    assert backend.supports_logprobs is False and backend.name == "anthropic/claude-test"
    fresh.reset(Faults(script=["429", "drop"], retry_after=0.1))
    answers = backend.answer(queries(12, mode="sample"))
    assert {a.text for a in answers} <= {"A", "B"} and all(a.tokens_in > 0 for a in answers)
    assert fresh.stats.n_answered == 12 and fresh.stats.requests == 14
    headers = fresh.stats.headers[-1]
    assert headers["x-api-key"] == ANTHROPIC_KEY and headers["anthropic-version"]
    assert "Authorization" not in headers
    with pytest.raises(ValuescopeError, match="log-probabilities"):
        backend.answer(queries(1))
    fresh.reset(Faults(script=["401"]))
    with pytest.raises(BackendError, match="ANTHROPIC_API_KEY") as info:
        get_backend(
            "anthropic/claude-test", base_url=fresh.url + "/v1", api_key_env="ANTHROPIC_API_KEY"
        ).answer(queries(1, mode="sample"))
    assert ANTHROPIC_KEY not in str(info.value)


def test_anthropic_payload_and_missing_key(monkeypatch):
    q = queries(1, mode="sample")[0]
    payload = messages_payload("claude-test", q)
    assert payload["system"] == q.messages[0][1]
    assert [m["role"] for m in payload["messages"]] == ["user"]
    assert payload["max_tokens"] == q.max_tokens and payload["temperature"] == q.temperature
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    with pytest.raises(ValuescopeError, match="ANTHROPIC_API_KEY"):
        get_backend("anthropic/claude-test")
