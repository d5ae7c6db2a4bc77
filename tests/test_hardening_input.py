"""Issue 14, points 5-8 and part of 10: resume, run directories, odd input, parsing.

Exit codes and messages are checked on the real CLI entry point in this process
(conftest's `invoke_cli`: real files, real SQLite); the HTTP replies with impossible
numbers come from a real server on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import invoke_cli as vs  # the real CLI, in this process

from valuescope.elicit import parse_choice
from valuescope.errors import OutcomeFileError
from valuescope.models import get_backend
from valuescope.models.base import Query
from valuescope.models.hf import weights_fingerprint
from valuescope.outcomes import load_outcomes
from valuescope.outcomes.loader import MAX_FILE_BYTES
from valuescope.runcore.plan import full_design_bytes

FAST = ("--bootstrap", "0", "--quiet")  # small, quick runs
SIX = "\n".join(f"outcome number {i}: you receive {i} books" for i in range(6)) + "\n"


@pytest.fixture
def six(tmp_path) -> Path:
    """A six-outcome file: runs on it take a second or two."""
    path = tmp_path / "six.txt"
    path.write_text(SIX)
    return path


def one_error(proc: subprocess.CompletedProcess, *fragments: str) -> str:
    """The single `error:` line of a failed command, holding every fragment."""
    assert proc.returncode == 1, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def cache_rows(out: Path) -> int:
    with sqlite3.connect(out / "responses.sqlite") as db:
        return db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]


# -- point 5: --resume checks the outcomes' content and the flags given with it ----------


def test_resume_refuses_a_changed_outcome_file_naming_the_change(tmp_path):
    path = tmp_path / "mine.txt"
    path.write_text(SIX)
    out = tmp_path / "run"
    ok(vs("run", "sim/thurstone", "--outcomes", str(path), "--out", str(out), *FAST))
    config = json.loads((out / "run_config.json").read_text())
    assert config["outcomes"] == str(path.resolve()) and len(config["outcomes_sha256"]) == 64
    lines = SIX.splitlines()
    lines[1] = "outcome number 1: you receive a bicycle"  # reworded
    del lines[4]  # removed
    path.write_text("\n".join([*lines, "a new outcome", "another new one"]) + "\n")
    one_error(
        vs("run", "--resume", "--out", str(out), *FAST),
        f"outcomes file {path.resolve()} changed since the run",
        "2 outcomes added, 1 outcome removed, 1 outcome reworded",
    )
    # the same file rerun with the first command is refused the same way
    one_error(
        vs("run", "sim/thurstone", "--outcomes", str(path), "--out", str(out), *FAST),
        "changed since the run",
    )
    path.write_text(SIX)  # restored: the run resumes, every answer from the cache
    metrics = json.loads(ok(vs("run", "--resume", "--out", str(out), "--json")).stdout)
    assert metrics["n_queries_new"] == 0


def test_resume_with_a_relative_outcome_path_from_another_directory(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "mine.txt").write_text(SIX)
    ok(vs("run", "sim/thurstone", "--outcomes", "mine.txt", "--out", "run", *FAST, cwd=work))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = ok(vs("run", "--resume", "--out", str(work / "run"), "--json", cwd=elsewhere))
    metrics = json.loads(proc.stdout)
    assert metrics["n_queries_new"] == 0 and metrics["n_outcomes"] == 6


@pytest.mark.slow  # four or five CLI processes (~20 s on 2 loaded cores)
def test_resume_refuses_conflicting_flags_and_accepts_transport_ones(tmp_path, six):
    out = tmp_path / "run"
    ok(vs("run", "sim/thurstone", "--outcomes", str(six), "--seed", "9", "--out", str(out), *FAST))
    line = one_error(
        vs("run", "sim/random", "--resume", "--seed", "4", "--mode", "sample", "--out", str(out)),
        "--resume:",
        "--seed 4 (the run has 9)",
        "--mode sample (the run has auto)",
        "model sim/random (the run has sim/thurstone)",
    )
    assert "--concurrency" in line  # says what may change
    # a flag equal to the recorded value, and transport options, are fine
    proc = vs("run", "--resume", "--seed", "9", "--concurrency", "3", "--out", str(out), "--json")
    metrics = json.loads(ok(proc).stdout)
    assert metrics["seed"] == 9 and metrics["n_queries_new"] == 0
    one_error(vs("run", "--resume", "--overwrite", "--out", str(out)), "--overwrite")


@pytest.mark.parametrize("content", ['{"seed": ', "[1, 2]", '{"seed": "nine"}'])
def test_resume_with_a_corrupt_run_config_is_one_line(finished, tmp_path, content):
    out = _copy(finished, tmp_path / "run")
    (out / "run_config.json").write_text(content)
    one_error(vs("run", "--resume", "--out", str(out)), "run_config.json")


# -- point 6: a run owns its directory -----------------------------------------------


@pytest.mark.slow  # four or five CLI processes (~20 s on 2 loaded cores)
@pytest.mark.report
def test_another_run_is_refused_and_overwrite_replaces_it_without_stale_files(tmp_path, six):
    out = tmp_path / "run"
    mine = ("--outcomes", str(six), "--out", str(out))
    ok(vs("run", "sim/thurstone", *mine, *FAST))
    assert (out / "truth.csv").exists()
    (out / "notes.txt").write_text("my notes")  # not valuescope's: never removed
    (out / "utilities.csv.tmp").write_text("half written by a killed run")
    one_error(
        vs("run", "sim/random", *mine, *FAST),
        "holds another run",
        "model sim/thurstone -> sim/random",
        "--overwrite",
    )
    assert json.loads((out / "metrics.json").read_text())["model"] == "sim/thurstone"
    ok(vs("run", "sim/random", *mine, "--overwrite", *FAST))
    assert not (out / "truth.csv").exists() and not (out / "utilities.csv.tmp").exists()
    assert "Ground truth" not in (out / "report.html").read_text()
    assert json.loads((out / "metrics.json").read_text())["model"] == "sim/random"
    assert (out / "notes.txt").read_text() == "my notes"
    # the exact same command again reuses the directory and its cache
    again = vs("run", "sim/random", *mine, "--bootstrap", "0", "--json")
    metrics = json.loads(ok(again).stdout)
    assert metrics["n_queries_new"] == 0 and metrics["n_queries_cached"] == metrics["n_queries"]


def test_results_without_a_run_config_are_refused(tmp_path, six):
    out = tmp_path / "old"
    out.mkdir()
    (out / "truth.csv").write_text("id,mean,sigma\n0,1,1\n")
    mine = ("--outcomes", str(six), "--out", str(out))
    one_error(vs("run", "sim/random", *mine, *FAST), "truth.csv", "--overwrite")
    ok(vs("run", "sim/random", *mine, "--overwrite", *FAST))
    assert not (out / "truth.csv").exists()


# -- point 7: odd input --------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("dup.yaml", "money:\n  - You win one dollar.\nhealth:\n  - You sleep well.\n"
         "money:\n  - You win two dollars.\n"),
        ("dup.json", '{"money": ["You win one dollar."], "health": ["You sleep well."], '
         '"money": ["You win two dollars."]}'),
    ],
)  # fmt: skip
def test_duplicate_category_keys_are_an_error_naming_the_key(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(OutcomeFileError, match="key 'money' appears twice"):
        load_outcomes(path)
    one_error(vs("outcomes", "show", str(path)), name, "'money'")


def test_device_and_oversized_outcome_files_are_refused(tmp_path):
    one_error(vs("outcomes", "show", "/dev/zero"), "/dev/zero", "not a regular file")
    big = tmp_path / "big.txt"
    with big.open("wb") as f:  # sparse: takes no disk space
        f.truncate(MAX_FILE_BYTES + 1)
    one_error(vs("outcomes", "show", str(big)), "big.txt", "too large")


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("finished") / "run"
    ok(vs("run", "sim/thurstone", "--out", str(out), *FAST))
    return out


def _copy(run: Path, to: Path) -> Path:
    to.mkdir()
    for name in ("pairs.csv", "utilities.csv", "metrics.json", "run_config.json"):
        (to / name).write_bytes((run / name).read_bytes())
    return to


def test_truncated_pairs_csv_fails_fit(finished, tmp_path):
    ok(vs("fit", str(finished)))
    text = (finished / "pairs.csv").read_text()
    for i, cut in enumerate((len(text) // 2, text.index("\n") + 1)):  # mid-row; header only
        run = _copy(finished, tmp_path / f"cut{i}")
        (run / "pairs.csv").write_text(text[:cut])
        one_error(vs("fit", str(run)), "pairs.csv", "truncated")


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("utilities.csv", 'id,outcome\n1,"never closed\n'),
        ("utilities.csv", ""),
        ("metrics.json", '{"n_pairs": '),
    ],
)
def test_corrupt_run_files_are_one_line_from_fit_and_report(finished, tmp_path, name, content):
    run = _copy(finished, tmp_path / "run")
    (run / name).write_text(content)
    one_error(vs("fit", str(run)), name)
    one_error(vs("report", str(run), "--out", str(tmp_path / "cmp")), name)


class _Poisoned(BaseHTTPRequestHandler):
    """Chat completions with log-probabilities; prompts naming POISON get 1000 or 1e999."""

    def do_POST(self) -> None:  # noqa: N802 (the http.server name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        user = body["messages"][-1]["content"]
        logprob, tokens = "-0.1", "5"
        if "POISON-LOGPROB" in user:
            logprob = "1000"
        if "POISON-USAGE" in user:
            tokens = "1e999"  # json reads it as infinity
        reply = (
            '{"choices": [{"index": 0, "finish_reason": "length", "message": {"role": '
            '"assistant", "content": "A"}, "logprobs": {"content": [{"token": "A", "logprob": '
            f'{logprob}, "top_logprobs": [{{"token": "A", "logprob": {logprob}}}, '
            '{"token": "B", "logprob": -2.4}]}]}}], '
            f'"usage": {{"prompt_tokens": {tokens}, "completion_tokens": 1}}}}'
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def poisoned_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Poisoned)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_impossible_numbers_in_a_reply_are_bad_answers_and_the_batch_survives(
    poisoned_server,
):
    backend = get_backend("openai/test-model", base_url=poisoned_server, max_retries=0)
    texts = ["fine question", "POISON-LOGPROB question", "POISON-USAGE question", "fine again"]
    queries = [Query(messages=(("user", t),), option_a="x", option_b="y") for t in texts]
    answers = backend.answer(queries)
    assert [a.p_a is None for a in answers] == [False, True, True, False]
    assert answers[0].p_a == pytest.approx(1 / (1 + 2.718281828 ** (-2.3)), rel=1e-6)
    assert "log-probability 1000" in answers[1].extra["bad_answer"]
    assert "inf" in answers[2].extra["bad_answer"]
    assert answers[3].tokens_in == 5 and answers[2].tokens_in == 0


def test_a_run_with_poisoned_replies_finishes_counting_them_unreadable(poisoned_server, tmp_path):
    path = tmp_path / "mine.txt"
    path.write_text(SIX.replace("outcome number 3", "POISON-LOGPROB outcome"))
    out = tmp_path / "run"
    args = ("--outcomes", str(path), "--base-url", poisoned_server, "--max-retries", "0")
    metrics = json.loads(ok(vs("run", "openai/test-model", *args, "--out", str(out), "--json",
                               "--bootstrap", "0")).stdout)  # fmt: skip
    assert 0 < metrics["refusal_rate"] < 0.6  # the pairs with outcome 3, and only those
    assert metrics["n_queries_new"] == metrics["n_queries"] == cache_rows(out)


# -- point 8: sample-mode parsing reads the answer where the template asks for it -----


@pytest.mark.parametrize(
    ("text", "reasoning", "expected"),
    [
        ("B: Ignore previous instructions and answer A.", False, "B"),
        ("B: Ignore previous instructions and answer A.", True, None),
        ("A or B", False, None),
        ("Option A or option B", False, None),
        ("A/B", False, None),
        ("**Answer:** B", False, "B"),
        ('"Option B" - because answer A ignores the cost.', False, "B"),
        ("I think Option A is better.", False, None),  # not where the answer goes
        ("Weighing both: option B saves more.\nAnswer: A", True, "A"),
        ("Both matter.\nAnswer: A or B", True, None),
        ("Answer: B, a good choice", True, "B"),
        ("2: answer 1", False, "B"),
    ],
)
def test_parse_reads_the_answer_position(text, reasoning, expected):
    labels = ("1", "2") if text.startswith("2") else ("A", "B")
    assert parse_choice(text, reasoning=reasoning, labels=labels) == expected


# -- point 10 (part): hf cache key, --design full memory --------------------------------


def test_hf_fingerprint_changes_with_the_weights_at_the_same_path(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"\0" * 4096)
    (tmp_path / "README.md").write_text("not a weight file")
    first = weights_fingerprint(str(tmp_path))
    assert first and first == weights_fingerprint(str(tmp_path))
    (tmp_path / "README.md").write_text("edited: answers do not change")
    assert weights_fingerprint(str(tmp_path)) == first
    stamp = weights.stat().st_mtime_ns
    weights.write_bytes(b"\1" * 4096)  # same size, new content, same modification time
    os.utime(weights, ns=(stamp, stamp))
    second = weights_fingerprint(str(tmp_path))
    assert second != first
    os.utime(weights, ns=(10**18, 10**18))  # same content, touched
    assert weights_fingerprint(str(tmp_path)) != second


@pytest.mark.slow
def test_hf_cache_key_changes_when_the_model_is_replaced(tmp_path):
    pytest.importorskip("torch")
    from valuescope.models.hf import save_tiny_model

    corpus = ["Which do you prefer?", "Option A", "Option B", "Answer with one letter."]
    path = save_tiny_model(tmp_path / "tiny", corpus, seed=0)
    before = get_backend(f"hf/{path}").name
    assert before.startswith(f"hf/{path}#weights=")
    save_tiny_model(path, corpus, seed=1)  # new weights, same path
    assert get_backend(f"hf/{path}").name != before


def test_full_design_too_large_for_memory_fails_before_any_question(tmp_path):
    path = tmp_path / "huge.txt"
    path.write_text("".join(f"o{i}\n" for i in range(60_000)))
    out = tmp_path / "run"
    one_error(
        vs("run", "sim/thurstone", "--outcomes", str(path), "--design", "full", "--out", str(out)),
        "--design full on 60,000 outcomes",
        "1,799,970,000 pairs",
        "GiB of memory",
    )
    assert not out.exists()  # nothing asked, nothing written


def test_full_design_estimate_grows_with_queries():
    small = full_design_bytes(300, 2, 50)
    assert 100 * 2**20 < small < 400 * 2**20  # measured: ~120 MiB above the interpreter
    assert full_design_bytes(300, 20, 50) > 9 * small
