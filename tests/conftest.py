"""Shared fixtures (seeded synthetic data, the CLI run for real) and the skip allow-list.

Under CI (`CI` set, or `VALUESCOPE_STRICT_SKIPS=1`) a session in which any test or module
is skipped fails, unless the skip is on `SKIP_ALLOWED`: a missing extra, or one that
installs but does not import, cannot pass unseen. `VALUESCOPE_STRICT_SKIPS=0` turns the
check off; outside CI skips are only listed.
"""

from __future__ import annotations

import os
import subprocess
import sys
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


def pytest_collection_modifyitems(config, items) -> None:
    """Slow end-to-end tests get a longer per-test limit unless they set their own."""
    if not config.pluginmanager.hasplugin("timeout"):  # pytest-timeout (dev extra) missing
        return
    for item in items:
        if item.get_closest_marker("slow") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(SLOW_TIMEOUT))


def pytest_runtest_logreport(report) -> None:
    _note_skip(report)


def pytest_collectreport(report) -> None:
    _note_skip(report)  # a module-level importorskip skips at collection


def unexpected_skips() -> dict[str, str]:
    """Skips this session that are not on the allow-list."""
    return {k: v for k, v in _SKIPPED.items() if k.split("[")[0] not in SKIP_ALLOWED}


def pytest_sessionfinish(session, exitstatus) -> None:
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


def run_cli(*args: str, timeout: float = 600, check: bool = False) -> subprocess.CompletedProcess:
    """Run `valuescope ARGS` in a real subprocess, as a user would."""
    env = dict(os.environ, PYTHONWARNINGS="ignore", COLUMNS="200")
    proc = subprocess.run(
        [sys.executable, "-m", "valuescope.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"valuescope {' '.join(args)} failed:\n{proc.stderr}")
    return proc


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture
def run_process():
    """`valuescope ARGS` in a real subprocess (also `cli`, where a module does not override it)."""
    return run_cli


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return tmp_path / "run"
