"""Issue 14, points 3, 4 and 9: where keys go, credentials in URLs, ~/.netrc, streaming.

Every request goes to a real HTTP server on 127.0.0.1 (loopback_server.py) that records
the headers it receives. CLI runs go through the real entry point in this process
(conftest's `invoke_cli`), but for runs killed mid-way: those are real subprocesses.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import invoke_cli
from loopback_server import Faults, LoopbackServer

from valuescope.config import RunConfig
from valuescope.elicit import ResponseCache, query_key
from valuescope.elicit.elicit import ask
from valuescope.elicit.prompts import get_template
from valuescope.errors import BackendError, ValuescopeError
from valuescope.models import Query, get_backend
from valuescope.models._http import (
    KEY_VARIABLES,
    host_key_variable,
    redact_url,
    resolve_key,
    restore_credentials,
    strip_userinfo,
)
from valuescope.outcomes import load_outcomes
from valuescope.runcore.pipeline import plan, run

OPENAI_KEY = "sk-test-" + "hardening-openai-91c4"  # fake keys, split against scanners
ANTHROPIC_KEY = "sk-ant-" + "test-hardening-77ab"
OWN_KEY = "own-" + "key-for-loopback-5e21"
PASSWORD = "pw-" + "in-the-url-3f8a"


@pytest.fixture(scope="module")
def server():
    with LoopbackServer(seed=5, latency=0.002) as s:
        yield s


@pytest.fixture
def fresh(server):
    server.reset(latency=0.002)
    server.slow_every = None
    yield server
    server.reset(latency=0.002)
    server.slow_every = None


@pytest.fixture(autouse=True)
def _keys(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
    for name in ("OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "MYKEY", *KEY_VARIABLES.values()):
        if name not in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
            monkeypatch.delenv(name, raising=False)


def queries(n: int, mode: str = "logprob") -> list[Query]:
    texts = load_outcomes("demo").texts
    t = get_template("default")
    pairs = [(a, b) for a in range(len(texts)) for b in range(a + 1, len(texts))][:n]
    return [Query(t.render(texts[a], texts[b]), texts[a], texts[b], mode=mode) for a, b in pairs]


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a CLI subprocess (one that is killed mid-run)."""
    env = dict(os.environ, PYTHONWARNINGS="ignore", COLUMNS="200")
    env.update(OPENAI_API_KEY=OPENAI_KEY, ANTHROPIC_API_KEY=ANTHROPIC_KEY, **extra)
    return env


def small_run(base_url: str, out: Path, *extra: str) -> list[str]:
    args = ["run", "openai/test-model", "--base-url", base_url, "--outcomes", "demo"]
    return [*args, "--design", "random", "--budget", "40", "--bootstrap", "0", "--out", str(out)]


def files_holding(directory: Path, secret: str) -> list[str]:
    return [
        p.name for p in directory.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()
    ]


# -- point 3: keys go only to their own hosts ---------------------------------------------
def test_openai_key_is_not_sent_to_another_host(fresh):
    backend = get_backend("openai/test-model", base_url=fresh.base_url)
    assert len(backend.answer(queries(3))) == 3
    assert fresh.stats.headers and all("Authorization" not in h for h in fresh.stats.headers)
    assert not [v for h in fresh.stats.headers for v in h.values() if OPENAI_KEY in v]


def test_api_key_env_sends_exactly_that_key(fresh, monkeypatch):
    monkeypatch.setenv("MYKEY", OWN_KEY)
    get_backend("openai/test-model", base_url=fresh.base_url, api_key_env="MYKEY").answer(
        queries(2)
    )
    get_backend("openai/test-model?api_key_env=MYKEY", base_url=fresh.base_url).answer(queries(2))
    assert [h["Authorization"] for h in fresh.stats.headers] == [f"Bearer {OWN_KEY}"] * 4
    monkeypatch.delenv("MYKEY")
    with pytest.raises(ValuescopeError, match="--api-key-env MYKEY: the environment variable"):
        get_backend("openai/test-model", base_url=fresh.base_url, api_key_env="MYKEY")
    with pytest.raises(ValuescopeError, match="not a variable name"):
        get_backend("openai/test-model", base_url=fresh.base_url, api_key_env="MY-KEY")


def test_cli_api_key_env_on_every_model_command():
    for command in (["run"], ["sensitivity"], ["experiment"], ["control", "assemble"]):
        proc = invoke_cli(*command, "--help")
        assert proc.returncode == 0 and "--api-key-env" in proc.stdout, command


def test_cli_run_sends_the_named_key_and_writes_only_its_name(fresh, tmp_path):
    out = tmp_path / "named"
    args = [*small_run(fresh.base_url, out), "--api-key-env", "MYKEY", "-q"]
    proc = invoke_cli(*args, env={"MYKEY": OWN_KEY})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert {h["Authorization"] for h in fresh.stats.headers} == {f"Bearer {OWN_KEY}"}
    assert json.loads((out / "run_config.json").read_text())["api_key_env"] == "MYKEY"
    assert files_holding(out, OWN_KEY) == [] and files_holding(out, OPENAI_KEY) == []
    assert OWN_KEY not in proc.stdout + proc.stderr


def test_known_service_table(monkeypatch):
    assert host_key_variable("openrouter.ai") == "OPENROUTER_API_KEY"
    assert host_key_variable("API.Together.xyz.") == "TOGETHER_API_KEY"
    assert host_key_variable("api.openai.com") == "OPENAI_API_KEY"
    assert host_key_variable("api.anthropic.com") == "ANTHROPIC_API_KEY"
    for host in ("api.groq.com", "api.mistral.ai", "api.deepseek.com", "api.fireworks.ai"):
        assert host_key_variable(host) == KEY_VARIABLES[host]
    # look-alike and unknown hosts get nothing
    for host in ("api.openai.com.evil.example", "evil-openai.com", "127.0.0.1", "localhost"):
        assert host_key_variable(host) is None
    assert resolve_key("http://127.0.0.1:8000/v1", None, "openai/x") == (None, None)
    assert resolve_key("https://api.openai.com/v1", None, "openai/x") == (
        OPENAI_KEY,
        "OPENAI_API_KEY",
    )
    # OpenRouter gets its own variable, never OPENAI_API_KEY
    with pytest.raises(ValuescopeError, match="set the OPENROUTER_API_KEY environment"):
        resolve_key("https://openrouter.ai/api/v1", None, "openai/x")
    monkeypatch.setenv("OPENROUTER_API_KEY", OWN_KEY)
    assert resolve_key("https://openrouter.ai/api/v1", None, "openai/x") == (
        OWN_KEY,
        "OPENROUTER_API_KEY",
    )
    # a named variable wins over the table
    monkeypatch.setenv("MYKEY", "named")
    assert resolve_key("https://openrouter.ai/api/v1", "MYKEY", "openai/x") == ("named", "MYKEY")
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(ValuescopeError, match="set the OPENAI_API_KEY environment variable"):
        get_backend("openai/gpt-4o-mini")


def test_anthropic_key_only_to_its_own_host(fresh, monkeypatch):
    sample = queries(2, mode="sample")
    get_backend("anthropic/claude-test", base_url=fresh.url).answer(sample)
    headers = fresh.stats.headers
    assert headers and all("x-api-key" not in h and "Authorization" not in h for h in headers)
    assert all(h["anthropic-version"] for h in headers)
    fresh.reset()
    monkeypatch.setenv("MYKEY", OWN_KEY)
    get_backend("anthropic/claude-test", base_url=fresh.url, api_key_env="MYKEY").answer(sample)
    assert [h["x-api-key"] for h in fresh.stats.headers] == [OWN_KEY] * 2
    assert not [v for h in fresh.stats.headers for v in h.values() if ANTHROPIC_KEY in v]
    assert resolve_key("https://api.anthropic.com", None, "anthropic/x")[1] == "ANTHROPIC_API_KEY"


def test_rejected_request_without_key_says_how_to_name_one(fresh):
    fresh.reset(Faults(script=["401"]))
    with pytest.raises(BackendError, match="none was sent.*--api-key-env NAME"):
        get_backend("openai/test-model", base_url=fresh.base_url, concurrency=1).answer(queries(1))


# -- point 4: credentials in the URL --------------------------------------------------------
def with_credentials(url: str, user: str = "alice", password: str = PASSWORD) -> str:
    return url.replace("http://", f"http://{user}:{password}@", 1)


def test_url_credentials_run_redacted_everywhere(fresh, tmp_path):
    out = tmp_path / "creds"
    url = with_credentials(fresh.base_url)
    proc = invoke_cli(*small_run(url, out), "-q")
    assert proc.returncode == 0, proc.stderr[-2000:]
    expected = "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    assert {h["Authorization"] for h in fresh.stats.headers} == {expected}
    assert files_holding(out, PASSWORD) == []
    assert PASSWORD not in proc.stdout + proc.stderr
    saved = json.loads((out / "run_config.json").read_text())
    assert saved["base_url"] == f"http://alice:***@127.0.0.1:{fresh.port}/v1"
    # the cache key holds the host, not the password: the same for any credentials
    q = queries(1)[0]
    keys = {
        query_key("openai/test-model", q, get_backend("openai/test-model", base_url=u).base_url)
        for u in (url, with_credentials(fresh.base_url, "carol", "other"), fresh.base_url)
    }
    other = get_backend("openai/test-model", base_url="http://u:p@127.0.0.2:9/v1").base_url
    assert len(keys) == 1 and query_key("openai/test-model", q, other) not in keys


def test_resume_asks_for_the_url_credentials_again(fresh, tmp_path):
    out = tmp_path / "resumed"
    url = with_credentials(fresh.base_url)
    args = small_run(url, out)
    args[args.index("40")] = "200"
    proc = subprocess.Popen(
        [sys.executable, "-m", "valuescope.cli", *args, "-q", "--concurrency", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=cli_env(),
    )
    fresh.reset(latency=0.02)
    deadline = time.time() + 60
    while fresh.stats.n_answered < 40 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    refused = invoke_cli("run", "--resume", "--out", str(out), "-q")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "pass the same --base-url with them again" in refused.stderr
    assert PASSWORD not in refused.stderr
    fresh.reset(latency=0.002)
    resumed = invoke_cli("run", "--resume", "--out", str(out), "--base-url", url, "-q")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    expected = "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    assert fresh.stats.headers and {h["Authorization"] for h in fresh.stats.headers} == {expected}
    assert files_holding(out, PASSWORD) == []


def test_url_credentials_stay_out_of_messages(fresh, monkeypatch):
    url = with_credentials(fresh.base_url)
    fresh.reset(Faults(script=["400"]))  # the server echoes the Authorization header
    backend = get_backend("openai/test-model", base_url=url, concurrency=1)
    with pytest.raises(BackendError) as info:
        backend.answer(queries(1))
    shown = str(info.value) + repr(backend) + backend.base_url + str(vars(backend))
    assert PASSWORD not in shown
    fresh.reset(Faults(fail_after=0, after_kind="503"))
    with pytest.raises(BackendError) as info:
        get_backend("openai/test-model", base_url=url, max_retries=0).answer(queries(1))
    assert PASSWORD not in str(info.value) and "127.0.0.1" in str(info.value)
    with pytest.raises(ValuescopeError) as info:
        get_backend("openai/x", base_url=f"http://u:{PASSWORD}@127.0.0.1:nope/v1")
    assert "invalid port" in str(info.value) and PASSWORD not in str(info.value)
    monkeypatch.setenv("MYKEY", OWN_KEY)
    with pytest.raises(ValuescopeError, match="give one of them") as info:
        get_backend("openai/x", base_url=url, api_key_env="MYKEY")
    assert PASSWORD not in str(info.value)


def test_redaction_helpers():
    url = f"https://bob:{PASSWORD}@host.example:8443/v1"
    assert redact_url(url) == "https://bob:***@host.example:8443/v1"
    assert redact_url("https://tok3n@host.example/v1") == "https://***@host.example/v1"
    assert redact_url("http://127.0.0.1:8000/v1") == "http://127.0.0.1:8000/v1"
    assert strip_userinfo(url) == "https://host.example:8443/v1"
    assert restore_credentials(redact_url(url), url) == url
    assert restore_credentials("http://h/v1", None) == "http://h/v1"
    with pytest.raises(ValuescopeError, match="pass the same --base-url"):
        restore_credentials(redact_url(url), None)


def test_netrc_entry_does_not_break_a_run(fresh, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    netrc = home / ".netrc"
    netrc.write_text("machine 127.0.0.1 login netrc-user password netrc-password\n")
    netrc.chmod(0o600)
    out = tmp_path / "netrc-run"
    env = {"HOME": str(home), "MYKEY": OWN_KEY, "NETRC": None}
    proc = invoke_cli(*small_run(fresh.base_url, out), "--api-key-env", "MYKEY", "-q", env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (out / "metrics.json").exists()
    assert {h["Authorization"] for h in fresh.stats.headers} == {f"Bearer {OWN_KEY}"}


# -- point 9: a fixed number of requests in flight -----------------------------------------
def test_one_slow_reply_holds_one_slot_not_a_batch(fresh, tmp_path):
    """400 queries in batches of 50, every 40th reply 1 s late, 16 in flight.

    Batch by batch, each of the 8 batches waits for its slow reply: at least 8 s.
    Streamed, the 10 slow replies overlap the rest: about 1-2 s.
    """
    fresh.slow_every, fresh.slow_latency = 40, 1.0
    backend = get_backend("openai/test-model", base_url=fresh.base_url, concurrency=16)
    qs = queries(400)
    with ResponseCache(tmp_path / "responses.sqlite") as cache:
        started = time.perf_counter()
        answers, n_new = ask(backend, qs, cache, batch_size=50)
        elapsed = time.perf_counter() - started
        assert n_new == 400 and cache.count() == 400
    assert all(a.p_a is not None for a in answers)
    assert fresh.stats.max_in_flight == 16
    assert elapsed < 5.0, f"{elapsed:.1f} s: slow replies still stall whole batches"
    # answers are matched to their queries, whatever order they arrived in
    for q, a in zip(qs, answers):
        assert a.p_a == pytest.approx(fresh.agent.p_first(q.option_a, q.option_b))


def test_answers_of_the_batch_in_flight_survive_a_kill(fresh, tmp_path):
    fresh.reset(latency=0.02)
    out = tmp_path / "killed"
    args = small_run(fresh.base_url, out)
    args[args.index("40")] = "300"  # budget: 600+ queries, all in one batch below
    args += ["--batch-size", "100000", "--concurrency", "4"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "valuescope.cli", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=cli_env(),
    )
    deadline = time.time() + 120
    while fresh.stats.n_answered < 150 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    answered = fresh.stats.n_answered
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "metrics.json").exists(), "the run finished before it was killed"
    with sqlite3.connect(out / "responses.sqlite") as db:
        saved = db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
    # batch by batch nothing of this one batch would be saved; streamed, all but the last few
    assert answered >= 150 and saved >= answered - 20, (saved, answered)


class Batched:
    """An API backend seen without `answer_stream`: the batch-by-batch path of before."""

    def __init__(self, backend) -> None:
        self._backend = backend
        self.name, self.base_url = backend.name, backend.base_url
        self.supports_logprobs, self.prices = backend.supports_logprobs, backend.prices

    def answer(self, queries):
        return self._backend.answer(queries)


def test_streaming_changes_no_result(fresh, tmp_path):
    """Same seed: streamed (held-out pairs folded into the first call) == batch by batch."""
    fresh.slow_every, fresh.slow_latency = 25, 0.2  # replies arrive out of order
    runs = {}
    for name in ("streamed", "batched"):
        config = RunConfig(
            model="openai/test-model",
            base_url=fresh.base_url,
            outcomes="demo",
            budget=80,
            bootstrap=0,
            batch_size=32,
            seed=3,
            out=tmp_path / name,
        )
        the_plan = plan(config)
        if name == "batched":
            the_plan.backend = Batched(the_plan.backend)
        runs[name] = run(the_plan).metrics
    streamed, batched = (tmp_path / "streamed", tmp_path / "batched")
    assert (streamed / "utilities.csv").read_bytes() == (batched / "utilities.csv").read_bytes()
    assert (streamed / "pairs.csv").read_bytes() == (batched / "pairs.csv").read_bytes()
    for key in ("n_queries", "n_queries_new", "heldout_accuracy", "heldout_log_loss", "stopping"):
        assert runs["streamed"][key] == runs["batched"][key], key
