"""A real OpenAI-compatible server on 127.0.0.1: llama.cpp's server with the small shipped model.

The `openai/` backend runs against it end to end (logprob mode from the server's
`top_logprobs`, and sample mode), and a rerun is answered from the cache alone.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request

import pandas as pd
import pytest

from valuescope.models.embedded import model_path
from valuescope.outcomes import load_outcomes

TEST_MODEL = "smollm2-135m"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    """Start `python -m llama_cpp.server` on a free port; yield its /v1 base URL."""
    gguf = model_path(TEST_MODEL)
    port = _free_port()
    # a file, not a pipe: the server logs a lot, and a full pipe would block it
    log = open(tmp_path_factory.mktemp("server") / "server.log", "w+")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(gguf), "--host", "127.0.0.1", "--port", str(port),
            "--n_ctx", "1024", "--n_threads", "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    while True:
        if proc.poll() is not None:
            log.seek(0)
            raise AssertionError(f"llama.cpp server exited early:\n{log.read()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{base}/models", timeout=2) as resp:
                if resp.status == 200:
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("llama.cpp server did not start within 120 s")
        time.sleep(0.5)
    yield base
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


N_OUTCOMES, BUDGET = 8, 16  # every question is real inference: a small set keeps it short


def _run(cli, base: str, out, *extra: str):
    outcomes = out.parent / "outcomes.txt"  # the first 8 outcomes of the demo set
    outcomes.write_text("\n".join(load_outcomes("demo").texts[:N_OUTCOMES]) + "\n")
    return cli(
        "run", "openai/smollm2", "--base-url", base, "--outcomes", str(outcomes),
        "--budget", str(BUDGET), "--bootstrap", "0", "--concurrency", "2",
        "--out", str(out), "-q", *extra,
        check=True,
    )  # fmt: skip


@pytest.mark.slow  # a real llama-server run; the OpenAI backend is fast against the loopback server
@pytest.mark.report
def test_full_run_through_the_openai_backend(cli, llama_server, tmp_path):
    out = tmp_path / "run"
    _run(cli, llama_server, out)
    metrics = json.loads((out / "metrics.json").read_text())
    utilities = pd.read_csv(out / "utilities.csv")
    assert metrics["mode"] == "logprob"
    assert len(utilities) == N_OUTCOMES and utilities["mean"].notna().all()
    assert metrics["n_queries_new"] == metrics["n_queries"] > 0
    assert metrics["tokens_in"] > 0
    assert (out / "report.html").exists()
    # The small model is near chance, but its answers are real probabilities.
    pairs = pd.read_csv(out / "pairs.csv")
    assert pairs["p"].between(0, 1).all() and pairs["p"].std() > 0

    _run(cli, llama_server, out)  # the same command again: everything from the cache
    again = json.loads((out / "metrics.json").read_text())
    assert again["n_queries_new"] == 0
    assert again["n_queries_cached"] == metrics["n_queries"]


@pytest.mark.slow  # sample mode on this model in-process is test_llamacpp.py's (slow tier too)
def test_sample_mode_through_the_openai_backend(cli, llama_server, tmp_path):
    out = tmp_path / "sample"
    _run(cli, llama_server, out, "--mode", "sample", "--samples", "1", "--stop-at", "1")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["mode"] == "sample"
    assert metrics["n_queries"] == 2 * (BUDGET + metrics["n_heldout_pairs"])
    assert metrics["tokens_out"] > 0
