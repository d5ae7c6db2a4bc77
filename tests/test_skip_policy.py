"""The strict-skip check of conftest.py, with and without xdist workers.

A planted skip that is not on `SKIP_ALLOWED` must fail the session, whether it skips in a
test or at collection, and whether the reports come from xdist workers (`-n 2`, node ids
with a `@group` suffix) or from one process. Each case is a real pytest run (a subprocess)
on a copy of this conftest.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PLANTED = {
    # the allow-listed name; local_ray puts it in the "ray" xdist group (a @ray suffix)
    "test_engine_ray.py": (
        "import pytest\n\n\n@pytest.fixture\ndef local_ray():\n    return None\n\n\n"
        "def test_vllm_missing_is_a_clear_error(local_ray):\n"
        "    pytest.skip('allowed: vllm is installed')\n"
    ),
    "test_planted.py": (
        "import pytest\n\n\ndef test_passes():\n    pass\n\n\n"
        "def test_planted_skip():\n    pytest.skip('planted: an extra went missing')\n"
    ),
    "test_planted_module.py": (
        "import pytest\n\npytest.importorskip('valuescope_no_such_module')\n\n\n"
        "def test_never_runs():\n    pass\n"
    ),
}
INI = "[pytest]\nmarkers =\n    slow: slow\n    xdist_group: one worker\n"


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("planted")
    (root / "tests").mkdir()
    shutil.copy(Path(__file__).with_name("conftest.py"), root / "tests" / "conftest.py")
    for name, text in PLANTED.items():
        (root / "tests" / name).write_text(text)
    (root / "pytest.ini").write_text(INI)
    return root


def pytest_run(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, VALUESCOPE_STRICT_SKIPS="1", PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


def listed(stdout: str) -> list[str]:
    """The node ids in the summary section of skips not on the allow-list."""
    section = stdout.split("skips not on the allow-list (this fails the session)")[1]
    return sorted(line.split(": ")[0] for line in section.splitlines() if line.startswith("tests/"))


@pytest.mark.parametrize(
    "workers",
    [pytest.param("2", marks=pytest.mark.slow), "0"],  # two workers: a 10 s nested session
)
def test_a_planted_skip_fails_the_session(project, workers):
    proc = pytest_run(project, "-n", workers, "--dist", "loadgroup")
    assert proc.returncode == 1, proc.stdout[-3000:]
    assert "failed" not in proc.stdout.splitlines()[-1]  # only the skips fail it
    assert listed(proc.stdout) == [
        "tests/test_planted.py::test_planted_skip",
        "tests/test_planted_module.py",  # a collection skip: the module's id
    ], proc.stdout[-3000:]


@pytest.mark.slow  # a nested two-worker pytest session (10 s)
def test_an_allowed_skip_under_xdist_passes(project):
    proc = pytest_run(project, "-n", "2", "--dist", "loadgroup", "tests/test_engine_ray.py")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "1 skipped" in proc.stdout
    assert "skips not on the allow-list" not in proc.stdout
