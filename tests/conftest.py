"""Shared fixtures: seeded synthetic data and a helper to run the CLI for real."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.special import ndtr


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
def run_dir(tmp_path: Path) -> Path:
    return tmp_path / "run"
