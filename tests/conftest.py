"""Shared fixtures (seeded synthetic data, the CLI run for real) and the skip allow-list.

Under CI (`CI` set, or `VALUESCOPE_STRICT_SKIPS=1`) a session in which any test or module
is skipped fails, unless the skip is on `SKIP_ALLOWED`: a missing extra, or one that
installs but does not import, cannot pass unseen. `VALUESCOPE_STRICT_SKIPS=0` turns the
check off; outside CI skips are only listed.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import pytest
from scipy.special import ndtr

# Tests that may skip in CI, and why. Node ids as pytest prints them.
SKIP_ALLOWED = {
    "tests/test_engine_ray.py::test_vllm_backend_answers_in_both_modes": (
        "needs vllm and a CUDA GPU (the GPU-only test)"
    ),
    "tests/test_engine_ray.py::test_vllm_missing_is_a_clear_error": (
        "runs only where vllm is not installed, so it skips on the GPU machines"
    ),
}

_SKIPPED: dict[str, str] = {}


def _strict_skips() -> bool:
    flag = os.environ.get("VALUESCOPE_STRICT_SKIPS")
    if flag is not None:
        return flag not in ("", "0", "false", "no")
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def _note_skip(report) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        _SKIPPED[report.nodeid] = reason


SLOW_TIMEOUT = 900  # seconds; pyproject's `timeout` (300 s) holds for every other test
# Under xdist (`-n 2 --dist loadgroup`), tests using one of these fixtures share a worker:
# two local Ray instances on one small machine fight for its cores, and the llama.cpp
# server (module scope) is started once, not once per worker.
XDIST_GROUPS = {"local_ray": "ray", "llama_server": "llama-server"}


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the xdist_group marks
def pytest_collection_modifyitems(config, items) -> None:
    """Slow end-to-end tests get a longer per-test limit unless they set their own."""
    for item in items:
        for fixture, group in XDIST_GROUPS.items():
            if fixture in item.fixturenames:
                item.add_marker(pytest.mark.xdist_group(group))
        if not item.get_closest_marker("xdist_group") and _uses_a_module_fixture(item):
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))
    if not config.pluginmanager.hasplugin("timeout"):  # pytest-timeout (dev extra) missing
        return
    for item in items:
        if item.get_closest_marker("slow") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(SLOW_TIMEOUT))


def _uses_a_module_fixture(item) -> bool:
    """Whether the test needs a module-scoped fixture of its own module.

    Such tests share one worker, so the fixture (a model loaded, a run made) is built once,
    not once per worker: measured, the control-training module's tiny model and assembly
    took 37 s of test time split over two workers and 9 s on one.
    """
    defs = getattr(item, "_fixtureinfo", None)
    if defs is None:
        return False
    return any(
        d[-1].scope == "module" and d[-1].baseid.split("::")[0].endswith(".py")
        for d in defs.name2fixturedefs.values()
    )


def pytest_runtest_logreport(report) -> None:
    _note_skip(report)


def pytest_collectreport(report) -> None:
    _note_skip(report)  # a module-level importorskip skips at collection


def _test_id(nodeid: str) -> str:
    """`path::name` of a node id, without parameters or xdist's `@group` suffix."""
    return nodeid.split("[")[0].split("@")[0]


def unexpected_skips() -> dict[str, str]:
    """Skips this session that are not on the allow-list."""
    return {k: v for k, v in _SKIPPED.items() if _test_id(k) not in SKIP_ALLOWED}


def skip_module_without(package: str, reason: str) -> None:
    """Skip the calling test module at collection when `package` is not installed.

    The package is only looked up (`importlib.util.find_spec`), not imported: every xdist
    worker collects every module, and importing torch with peft, inspect_ai or ray there
    costs seconds per worker. The tests import it when they run, so an extra that is
    installed but broken fails them (an error, not a skip).
    """
    __tracebackhide__ = True  # the skip is reported at the module's line, not here
    if importlib.util.find_spec(package) is None:
        pytest.skip(reason, allow_module_level=True)


def _xdist_worker(config) -> bool:
    return hasattr(config, "workerinput")  # the controller receives every worker's reports


def pytest_sessionfinish(session, exitstatus) -> None:
    if _xdist_worker(session.config):
        return
    if _strict_skips() and unexpected_skips() and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    bad = unexpected_skips()
    if not bad:
        return
    strict = _strict_skips()
    title = "skips not on the allow-list" + (" (this fails the session)" if strict else "")
    terminalreporter.section(title, sep="=", red=strict, yellow=not strict)
    for nodeid, reason in sorted(bad.items()):
        terminalreporter.line(f"{nodeid}: {reason}")
    terminalreporter.line("allowed skips: tests/conftest.py SKIP_ALLOWED; docs/testing.md")


@pytest.fixture
def synthetic():
    """A factory of (pairs, p, mu, sigma) from hidden Thurstonian utilities."""

    def make(n: int = 40, n_pairs: int = 400, seed: int = 0, samples: int = 0):
        rng = np.random.default_rng(seed)
        mu = rng.normal(size=n)
        sigma = rng.uniform(0.2, 1.0, n)
        a = rng.integers(0, n, n_pairs * 2)
        b = rng.integers(0, n, n_pairs * 2)
        keep = a != b
        pairs = np.stack([a[keep], b[keep]], axis=1)[:n_pairs]
        # a cycle through every outcome keeps the graph connected
        order = rng.permutation(n)
        pairs = np.concatenate([pairs, np.stack([order, np.roll(order, -1)], axis=1)])
        p = ndtr(
            (mu[pairs[:, 0]] - mu[pairs[:, 1]]) / np.hypot(sigma[pairs[:, 0]], sigma[pairs[:, 1]])
        )
        if samples:
            p = rng.binomial(samples, p) / samples
        return pairs, p, mu, sigma

    return make


CLI_ENV = {"PYTHONWARNINGS": "ignore", "COLUMNS": "200"}


def run_cli(
    *args: str,
    timeout: float = 600,
    check: bool = False,
    cwd: Path | str | None = None,
    env: Mapping[str, str | None] | None = None,
    module: str = "valuescope.cli",
) -> subprocess.CompletedProcess:
    """Run `valuescope ARGS` in a real subprocess, as a user would.

    `env` adds variables to this process's environment (None removes one); `module` picks
    the entry point (`valuescope` runs `python -m valuescope`).
    """
    proc = subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_child_env(env),
        cwd=cwd,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"valuescope {' '.join(args)} failed:\n{proc.stderr}")
    return proc


def _child_env(extra: Mapping[str, str | None] | None) -> dict[str, str]:
    env = dict(os.environ, **CLI_ENV)
    for name, value in (extra or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


@contextlib.contextmanager
def _environ(extra: Mapping[str, str | None]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in extra}
    try:
        for name, value in extra.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def _chdir(where: Path | str) -> Iterator[None]:  # contextlib.chdir is Python 3.11+
    before = os.getcwd()
    os.chdir(where)
    try:
        yield
    finally:
        os.chdir(before)


@contextlib.contextmanager
def _wide_consoles() -> Iterator[None]:
    """The CLI's rich consoles 200 columns wide, as `run_cli`'s COLUMNS makes them: rich
    reads COLUMNS once, when the console is made (at import), not at each command."""
    from valuescope import terminal

    consoles = (terminal.out_console, terminal.err_console)
    saved = [console._width for console in consoles]
    try:
        for console in consoles:
            console.width = int(CLI_ENV["COLUMNS"])
        yield
    finally:
        for console, width in zip(consoles, saved):
            console.width = width


def invoke_cli(
    *args: str,
    check: bool = False,
    cwd: Path | str | None = None,
    env: Mapping[str, str | None] | None = None,
    stdin: str = "",
) -> subprocess.CompletedProcess:
    """`valuescope ARGS` in this process, through the real entry point (`valuescope.cli.main`,
    its error printing and exit codes included); returns what `run_cli` would.

    No interpreter start-up (1-2 s each), so argument handling and runs that need no
    process of their own (signals, a killed child, concurrent runs) go through here.
    Warnings are ignored, as `run_cli`'s PYTHONWARNINGS does.
    """
    from valuescope.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.ExitStack() as stack:
        stack.enter_context(_environ({"COLUMNS": "200", **(env or {})}))  # help's width
        if cwd is not None:
            stack.enter_context(_chdir(cwd))
        stack.enter_context(warnings.catch_warnings())
        warnings.simplefilter("ignore")
        stack.enter_context(contextlib.redirect_stdout(out))
        stack.enter_context(contextlib.redirect_stderr(err))
        saved_stdin, sys.stdin = sys.stdin, io.StringIO(stdin)
        stack.callback(setattr, sys, "stdin", saved_stdin)
        stack.enter_context(_wide_consoles())
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            if isinstance(exc.code, str):  # as the interpreter does: message, status 1
                err.write(exc.code + "\n")
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    proc = subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())
    if check and code != 0:
        raise AssertionError(f"valuescope {' '.join(args)} failed:\n{proc.stderr}")
    return proc


@pytest.fixture
def cli():
    """`valuescope ARGS` in this process (`invoke_cli`)."""
    return invoke_cli


@pytest.fixture
def run_process():
    """`valuescope ARGS` in a real subprocess (`run_cli`)."""
    return run_cli


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return tmp_path / "run"


@pytest.fixture(autouse=True)
def _run_reports(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run started by a test writes no report.html unless the test is marked `report`.

    `valuescope run` and `valuescope.measure` get the pipeline's `report=None`, the path
    they take when no page is wanted; drawing the page's figures is about 1 s of CPU, two
    thirds of a small run, and most tests read the tables only. Tests that read the page
    (or build one from a run) carry `@pytest.mark.report`; an unmarked test that asks for
    a page fails (`build_report` is None), so none goes untested by accident. Analyses'
    pages are not touched here (`no_sub_run_reports` is their switch).
    """
    if request.node.get_closest_marker("report") is None:
        import valuescope.report

        monkeypatch.setattr(valuescope.report, "build_report", None)


@pytest.fixture
def no_sub_run_reports(monkeypatch: pytest.MonkeyPatch) -> None:
    """An analysis's utility sub-runs write no report.html (the pipeline's `report=None`).

    Rendering a run's page is about 1 s of CPU, two thirds of a quick analysis test, and
    the page is the ordinary run report (tests/test_report.py, every CLI run). The
    analysis modules (`test_analysis_*.py`) use this; the analyses' tests in
    test_experiments_part1/2.py, the CLI and the Python API page still render the
    sub-runs' pages, and the analysis's own page is never skipped.
    """
    import valuescope.experiments.base as base

    monkeypatch.setattr(base, "build_report", None)


@pytest.fixture(scope="session")
def gguf() -> Path:
    """The GGUF file of the small embedded test model (SmolLM2-135M), installed by CI."""
    from valuescope.models.embedded import MODELS, available, model_path

    if "smollm2-135m" not in available():
        pytest.fail(f"the test model is not installed: {MODELS['smollm2-135m'].pip}")
    return model_path("smollm2-135m")
