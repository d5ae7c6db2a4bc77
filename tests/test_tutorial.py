"""docs/tutorial.md runs as written: its bash and python blocks, in order, in an empty folder.

The blocks share the folder (the python blocks read the runs the bash blocks wrote), so they
run as one test; a failing block is named by its position and first line.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

TUTORIAL = Path(__file__).resolve().parents[1] / "docs" / "tutorial.md"
FENCE = re.compile(r"^```(bash|python)[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def code_blocks(text: str) -> list[tuple[str, str]]:
    """(language, code) of every ```bash and ```python fenced block, in order."""
    return [(m.group(1), m.group(2)) for m in FENCE.finditer(text)]


def run_block(language: str, code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run one block in cwd: bash with -euo pipefail, python with this interpreter."""
    if language == "bash":
        argv = ["bash", "-euo", "pipefail", "-c", code]
    else:
        argv = [sys.executable, "-c", code]
    env = {**os.environ, "NO_COLOR": "1", "CI": "true"}
    return subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_code_blocks_are_found() -> None:
    blocks = code_blocks(TUTORIAL.read_text(encoding="utf-8"))
    languages = {language for language, _ in blocks}
    assert languages == {"bash", "python"}, "the tutorial has lost its bash or python blocks"
    assert len(blocks) >= 6


def test_fence_parser_keeps_order_and_skips_other_languages() -> None:
    text = "```bash\necho 1\n```\n```text\nnot code\n```\n```python\nprint(2)\n```\n"
    assert code_blocks(text) == [("bash", "echo 1\n"), ("python", "print(2)\n")]


def test_a_failing_block_is_reported(tmp_path: Path) -> None:
    assert run_block("python", "assert 1 == 2\n", tmp_path).returncode != 0
    assert run_block("bash", "false\necho after\n", tmp_path).returncode != 0


@pytest.mark.slow  # the whole tutorial on the embedded model; its parser is tested fast
def test_tutorial_runs(tmp_path: Path) -> None:
    for index, (language, code) in enumerate(code_blocks(TUTORIAL.read_text("utf-8")), 1):
        done = run_block(language, code, tmp_path)
        first = code.strip().splitlines()[0]
        assert done.returncode == 0, (
            f"tutorial block {index} ({language}: {first}) failed:\n{done.stdout}\n{done.stderr}"
        )
    assert (tmp_path / "runs" / "report" / "report.html").is_file()
