"""Issue 14, points 1, 2 and 10 (part): the first contact with the command line.

Usage errors, --version, `python -m valuescope`, Ctrl-C and SIGTERM during a run, atomic
output files, `report --out` on a run directory, and the directory lock of `sensitivity`
and `control`. Argument handling and runs that need no process of their own go through
the real entry point in this process (conftest's `invoke_cli`); signals, a second process
on a locked directory and the `python -m valuescope` / console-script entry points run
real subprocesses (real signals, real SQLite, real flock).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

import pytest
import typer
from conftest import invoke_cli, run_cli
from typer.testing import CliRunner

from valuescope.atomic import atomic_write, write_text
from valuescope.cli import app
from valuescope.errors import ValuescopeError
from valuescope.runcore.rundir import run_dir_lock

ENV = dict(os.environ, PYTHONWARNINGS="ignore", COLUMNS="200")
# slow enough to be interrupted mid-run: each batch of 8 questions takes 0.1 s
SLOW_SIM = "sim/thurstone?delay=0.1"


def valuescope(*args: str) -> subprocess.CompletedProcess:
    """`python -m valuescope ARGS`, as a user would type it: a real process."""
    return run_cli(*args, timeout=120, module="valuescope")


def cache_rows(out: Path) -> int:
    with sqlite3.connect(out / "responses.sqlite") as db:
        return db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("Error")]


# -- point 1: usage errors ----------------------------------------------------------------

USAGE_ERRORS = [
    ["run", "--nosuch"],
    ["run", "sim/thurstone", "--samples", "abc"],
    ["nosuchcommand"],
    ["control", "nosuchcommand"],
    ["control", "assemble", "--citizens", "many"],
    ["report"],  # a missing argument
]


@pytest.mark.parametrize("args", USAGE_ERRORS, ids=" ".join)
def test_usage_error_is_short_usage_message_and_exit_2(args):
    proc = invoke_cli(*args)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert len(error_lines(proc.stderr)) == 1, proc.stderr
    assert proc.stderr.startswith("Usage: valuescope"), proc.stderr
    assert len(proc.stderr.splitlines()) <= 5, proc.stderr


@pytest.mark.parametrize("args", [[], ["outcomes"], ["control"]], ids=lambda a: " ".join(a) or "-")
def test_bare_group_prints_usage_and_exits_2(args):
    proc = invoke_cli(*args)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr + proc.stdout
    assert f"Usage: valuescope {' '.join(args)}".strip() in proc.stdout + proc.stderr


@pytest.mark.skipif(
    typer.BadParameter.__module__.startswith("click"),
    reason="this typer is built on the click package",
)
def test_usage_errors_need_no_click_package():
    """typer 0.29 vendors click: the handler must not import the click package."""
    code = (
        "import sys; sys.modules['click'] = None\n"  # `import click` now fails
        "from valuescope.cli import main\n"
        "main(['run', '--nosuch'])\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=60
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    [line] = error_lines(proc.stderr)
    assert line.startswith("Error: No such option: --nosuch")


def test_user_error_is_one_line_exit_1():
    proc = invoke_cli("run", "sim/nosuchagent", "--out", "/nonexistent/not-created")
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_version_in_subprocess():
    proc = valuescope("--version")
    assert proc.returncode == 0
    assert proc.stdout == f"valuescope {version('valuescope')}\n"


def test_version_with_clirunner():
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"valuescope {version('valuescope')}"


def test_console_script_and_module_agree():
    """The `valuescope` entry point and `python -m valuescope` are the same program."""
    script = Path(sys.executable).with_name("valuescope")
    if not script.exists():
        pytest.skip("no valuescope console script next to this python")
    proc = subprocess.run(
        [str(script), "run", "--nosuch"], capture_output=True, text=True, env=ENV, timeout=60
    )
    assert proc.returncode == 2
    assert proc.stderr == valuescope("run", "--nosuch").stderr


# -- point 2: Ctrl-C and SIGTERM ----------------------------------------------------------


def terminal_signals() -> None:
    """In the child: SIGINT as a terminal's foreground job has it. A job started in the
    background of a non-interactive shell (as CI may start this suite) inherits SIGINT
    ignored, and Python then never raises KeyboardInterrupt, whatever valuescope does."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_slow_run(out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "valuescope", "run", SLOW_SIM, "--out", str(out)]
        + ["--batch-size", "8", "--bootstrap", "0", "-q", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=terminal_signals,
        env=ENV,
    )


def wait_for_answers(out: Path, at_least: int, timeout: float = 60) -> None:
    """Poll the run's cache until it holds some answers (the run is mid-way)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if cache_rows(out) >= at_least:
                return
        except sqlite3.Error:
            pass
        time.sleep(0.05)
    raise AssertionError(f"the run never saved {at_least} answers")


def interrupt(proc: subprocess.Popen, sig: int) -> tuple[int, str]:
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err


@pytest.mark.slow
def test_sigint_saves_answers_says_how_to_resume_and_resume_asks_the_rest(tmp_path):
    out = tmp_path / "run"
    proc = start_slow_run(out)
    wait_for_answers(out, 16)
    code, err = interrupt(proc, signal.SIGINT)
    assert code == 130, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    saved = cache_rows(out)
    assert 0 < saved < 356
    assert lines[0] == (
        f"interrupted: {saved} answers saved in {out}; "
        f"resume with: valuescope run --resume --out {out}"
    )
    assert not (out / "metrics.json").exists()

    resumed = valuescope("run", "--resume", "--out", str(out), "-q")
    assert resumed.returncode == 0, resumed.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_queries_cached"] == saved  # nothing saved was asked again
    assert metrics["n_queries_new"] == metrics["n_queries"] - saved
    assert cache_rows(out) == metrics["n_queries"]


@pytest.mark.slow
def test_sigterm_exits_143_with_the_same_line(tmp_path):
    out = tmp_path / "run"
    proc = start_slow_run(out)
    wait_for_answers(out, 8)
    code, err = interrupt(proc, signal.SIGTERM)
    assert code == 143, err
    assert "Traceback" not in err
    assert err.strip() == (
        f"interrupted: {cache_rows(out)} answers saved in {out}; "
        f"resume with: valuescope run --resume --out {out}"
    )


@pytest.mark.slow
def test_ctrl_c_stops_a_shell_and_chain(tmp_path):
    """`valuescope run ... && echo next`: a Ctrl-C (SIGINT to the whole process group,
    as a terminal sends it) must not let the shell go on to the next command."""
    out = tmp_path / "run"
    command = (
        f"{sys.executable} -m valuescope run '{SLOW_SIM}' --out {out} --batch-size 8 "
        "--bootstrap 0 -q && echo next"
    )
    shell = subprocess.Popen(
        ["bash", "-c", command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=terminal_signals,
        env=ENV,
        start_new_session=True,
    )
    wait_for_answers(out, 8)
    os.killpg(shell.pid, signal.SIGINT)
    stdout, stderr = shell.communicate(timeout=60)
    assert "next" not in stdout
    assert shell.returncode == 130, stderr
    assert "interrupted:" in stderr


@pytest.mark.slow
def test_sigint_during_api_requests_keeps_the_answers_that_arrived(tmp_path):
    """A real HTTP server on 127.0.0.1: at most the requests in flight are lost, and the
    resumed run sends the server exactly the questions that are not in the cache."""
    sys.path.insert(0, str(Path(__file__).parent))
    from loopback_server import LoopbackServer

    out = tmp_path / "api"
    concurrency = 4
    with LoopbackServer(latency=0.05) as server:
        command = ["run", "openai/test-model", "--base-url", server.base_url, "--out", str(out)]
        command += ["--concurrency", str(concurrency), "--bootstrap", "0", "-q"]
        env = dict(ENV, OPENAI_API_KEY="sk-not-for-this-host")
        proc = subprocess.Popen(
            [sys.executable, "-m", "valuescope", *command],
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=terminal_signals,
            env=env,
        )
        wait_for_answers(out, 20)
        time.sleep(0.4)  # mid-way through the questions of one design round, not between two
        code, err = interrupt(proc, signal.SIGINT)
        saved = cache_rows(out)
        assert code == 130, err
        assert err.strip() == (
            f"interrupted: {saved} answers saved in {out}; "
            f"resume with: valuescope run --resume --out {out}"
        )
        # every answer the server sent was saved, but for those still on their way
        assert server.stats.n_answered - saved <= concurrency
        server.reset()
        resumed = subprocess.run(
            [sys.executable, "-m", "valuescope", "run", "--resume", "--out", str(out), "-q"],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        assert resumed.returncode == 0, resumed.stderr
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["n_queries_cached"] == saved
        assert server.stats.requests == metrics["n_queries"] - saved


def all_cache_rows(out: Path) -> int:
    """Rows in every response cache of `out` and of its sub-directories."""
    total = 0
    for path in [out / "responses.sqlite", *out.glob("*/responses.sqlite")]:
        if path.exists():
            total += cache_rows(path.parent)
    return total


@pytest.mark.slow
@pytest.mark.parametrize(
    "args",
    [
        ["sensitivity", SLOW_SIM, "--budget", "60"],
        ["experiment", "expected-utility", "sim/eu?delay=0.1", "--quick"],
        ["control", "assemble", "sim/citizen?delay=0.2"],
    ],
    ids=lambda a: a[0],
)
def test_sigint_in_sensitivity_experiment_and_control(tmp_path, args):
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "valuescope", *args, "--out", str(out), "-q"],
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=terminal_signals,
        env=ENV,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if all_cache_rows(out) > 0:
                break
        except sqlite3.Error:
            pass
        time.sleep(0.05)
    code, err = interrupt(proc, signal.SIGINT)
    assert code == 130, err
    assert "Traceback" not in err
    saved = all_cache_rows(out)
    assert saved > 0
    assert err.strip() == (
        f"interrupted: {saved} answers saved in {out}; rerun the same command to resume"
    )


def test_interrupt_before_any_run_config_says_rerun(tmp_path):
    """Ctrl-C before the run recorded its settings: there is nothing to --resume yet."""
    from valuescope.interrupts import Interrupted, interruptible

    with pytest.raises(Interrupted) as caught, interruptible(tmp_path, lambda: None):
        raise KeyboardInterrupt
    assert caught.value.exit_code == 130
    assert str(caught.value) == (
        f"interrupted: 0 answers saved in {tmp_path}; rerun the same command to resume"
    )


# -- point 10: atomic outputs -------------------------------------------------------------


def test_atomic_write_keeps_the_old_file_when_the_writer_fails(tmp_path):
    path = tmp_path / "report.html"
    path.write_text("old")

    def half_then_fail(tmp: Path) -> None:
        tmp.write_text("half of the new")
        raise RuntimeError("the writer broke")

    with pytest.raises(RuntimeError):
        atomic_write(path, half_then_fail)
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]

    def half_then_interrupt(tmp: Path) -> None:
        tmp.write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, half_then_interrupt)
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]

    write_text(path, "new")
    assert path.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


def test_replace_dir_keeps_the_old_directory_until_the_new_one_is_whole(tmp_path):
    """A saved model (a directory): a save that fails half-way keeps the old one."""
    from valuescope.atomic import replace_dir

    target = tmp_path / "adapter"
    target.mkdir()
    (target / "weights.bin").write_text("old weights")

    def half_a_save(tmp: Path) -> None:
        tmp.mkdir()
        (tmp / "config.json").write_text("{}")
        raise KeyboardInterrupt  # killed before the weights

    with pytest.raises(KeyboardInterrupt):
        replace_dir(target, half_a_save)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter"]
    assert sorted(p.name for p in target.iterdir()) == ["weights.bin"]

    def whole_save(tmp: Path) -> None:
        tmp.mkdir()
        (tmp / "weights.bin").write_text("new weights")

    replace_dir(target, whole_save)
    assert (target / "weights.bin").read_text() == "new weights"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter"]


def test_run_files_go_through_the_atomic_writer(tmp_path):
    """write_json/write_csv of rundir use the same helper: an interrupt mid-write leaves
    the old file and no temporary one."""
    import pandas as pd

    from valuescope.runcore.rundir import write_csv, write_json

    path = tmp_path / "metrics.json"
    write_json(path, {"a": 1})

    class Exploding:
        def __str__(self) -> str:  # to_csv writes the rows before this one, then stops
            raise KeyboardInterrupt

    frame = pd.DataFrame({"x": [*range(100_000), Exploding()]})
    with pytest.raises(KeyboardInterrupt):
        write_csv(path, frame)
    assert json.loads(path.read_text()) == {"a": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("finished") / "run"
    proc = invoke_cli("run", "sim/thurstone", "--out", str(out), "--bootstrap", "0", "-q")
    assert proc.returncode == 0, proc.stderr
    return out


# A real mid-write failure, no mocks: a file-size limit makes the write of a big file
# fail with EFBIG part-way through (SIGXFSZ ignored), as a full disk would.
LIMITED_WRITE = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))
from valuescope.errors import ValuescopeError
try:
    {call}
except ValuescopeError as exc:
    print(exc)
    sys.exit(1)
"""


def write_with_size_limit(call: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", LIMITED_WRITE.format(call=call)],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=120,
    )


def test_run_report_failing_mid_write_leaves_the_old_report(finished_run, tmp_path):
    report = finished_run / "report.html"
    before = report.read_bytes()
    assert len(before) > 20000  # bigger than the limit: the write fails part-way
    report.write_bytes(b"<html>the old report</html>")
    proc = write_with_size_limit(
        f"from valuescope.report import build_report; build_report({str(finished_run)!r})"
    )
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.startswith(f"cannot write {report}: File too large")
    assert report.read_bytes() == b"<html>the old report</html>"
    assert not [p for p in finished_run.iterdir() if ".tmp" in p.name]


def test_comparison_failing_mid_write_leaves_the_old_report(finished_run, tmp_path):
    out = tmp_path / "compare"
    out.mkdir()
    (out / "report.html").write_text("old comparison")
    proc = write_with_size_limit(
        "from valuescope.report.compare import build_comparison; "
        f"build_comparison([{str(finished_run)!r}], {str(out)!r}, figure_files=False)"
    )
    assert proc.returncode == 1, proc.stderr
    assert "File too large" in proc.stdout
    assert (out / "report.html").read_text() == "old comparison"
    leftovers = [p for p in out.rglob("*") if ".tmp" in p.name]
    assert not leftovers


# -- point 10: report --out on a run directory --------------------------------------------


def test_report_refuses_to_overwrite_a_run_directory(finished_run):
    before = (finished_run / "report.html").read_bytes()
    proc = invoke_cli("report", str(finished_run), "--out", str(finished_run))
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert f"--out {finished_run} is a run directory" in proc.stderr
    assert "--overwrite" in proc.stderr
    assert (finished_run / "report.html").read_bytes() == before
    assert not (finished_run / "tables").exists()


def test_report_overwrite_replaces_a_run_directory_report(finished_run, tmp_path):
    target = tmp_path / "copy"
    target.mkdir()
    (target / "metrics.json").write_text("{}")
    (target / "report.html").write_text("the run's own page")
    refused = invoke_cli("report", str(finished_run), "--out", str(target))
    assert refused.returncode == 1
    assert (target / "report.html").read_text() == "the run's own page"
    proc = invoke_cli(
        "report", str(finished_run), "--out", str(target), "--overwrite", "--no-figures", "-q"
    )
    assert proc.returncode == 0, proc.stderr
    assert "<html" in (target / "report.html").read_text()


def test_report_into_a_fresh_directory_needs_no_flag(finished_run, tmp_path):
    out = tmp_path / "compare"
    proc = invoke_cli("report", str(finished_run), "--out", str(out), "--no-figures", "-q")
    assert proc.returncode == 0, proc.stderr
    again = invoke_cli("report", str(finished_run), "--out", str(out), "--no-figures", "-q")
    assert again.returncode == 0, again.stderr  # a comparison directory is rewritten freely


# -- point 10: sensitivity and control take the run-directory lock -----------------------

LOCKED_COMMANDS = [
    ["sensitivity", "sim/thurstone", "--budget", "40"],
    ["control", "assemble", "sim/citizen", "--citizens", "4", "--pairs", "8"],
    ["control", "train", "hf/nonexistent-model"],
]


@pytest.mark.parametrize("args", LOCKED_COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_second_process_on_a_locked_directory_is_refused(tmp_path, args):
    out = tmp_path / "busy"
    out.mkdir()
    with run_dir_lock(out):  # this test process is the first run
        proc = valuescope(*args, "--out", str(out), "-q")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert f"another run is in progress in {out} (pid {os.getpid()})" in lines[0]
    assert sorted(p.name for p in out.iterdir()) == [".valuescope.lock"]  # nothing written


def test_control_evaluate_is_locked_too(tmp_path):
    trained = tmp_path / "trained"
    where = trained / "evaluation"
    where.mkdir(parents=True)
    with run_dir_lock(where):
        proc = invoke_cli("control", "evaluate", str(trained), "-q")
    assert proc.returncode == 1
    assert f"another run is in progress in {where}" in proc.stderr


def test_sensitivity_lock_is_released_after_the_run(tmp_path):
    out = tmp_path / "sens"
    proc = invoke_cli("sensitivity", "sim/thurstone", "--budget", "40", "--out", str(out), "-q")
    assert proc.returncode == 0, proc.stderr
    with run_dir_lock(out):  # free again: taking it does not raise
        pass
    with pytest.raises(ValuescopeError), run_dir_lock(out), run_dir_lock(out):
        pass
