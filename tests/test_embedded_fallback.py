"""`embedded/<name>` without llama-cpp-python: answered through transformers, or one error.

The missing library is made real by blocking its import (`sys.modules[name] = None`, in
this process or, for the CLI run, in a child's sitecustomize), not by a stand-in backend.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import textwrap

import pytest

from valuescope.errors import MissingDependencyError
from valuescope.models import get_backend
from valuescope.models.embedded import TRANSFORMERS_MODULES
from valuescope.outcomes import load_outcomes

TEST_MODEL = "smollm2-135m"


def test_without_llama_cpp_or_transformers_the_error_names_both(monkeypatch, gguf):
    for module in ("llama_cpp", *TRANSFORMERS_MODULES):
        monkeypatch.setitem(sys.modules, module, None)  # import fails, find_spec says None
    with pytest.raises(MissingDependencyError) as caught:
        get_backend(f"embedded/{TEST_MODEL}")
    message = str(caught.value)
    assert "\n" not in message
    assert "llama-cpp-python" in message and "scripts/install-models.sh" in message
    assert 'pip install "valuescope[hf]"' in message


@pytest.mark.slow
def test_demo_run_answers_through_transformers_without_llama_cpp(run_process, tmp_path, gguf):
    """The CLI run works where llama_cpp cannot be imported, and says which library answered."""
    pytest.importorskip("transformers", reason="the hf extra is not installed")
    blocker = tmp_path / "site"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(
        textwrap.dedent("""\
            import sys
            sys.modules["llama_cpp"] = None  # as if llama-cpp-python were not installed
        """)
    )
    out = tmp_path / "run"
    outcomes = tmp_path / "outcomes.txt"  # 8 demo outcomes: 12 pairs connect them
    outcomes.write_text("\n".join(load_outcomes("demo").texts[:8]) + "\n")
    proc = run_process(
        "run", f"embedded/{TEST_MODEL}", "--outcomes", str(outcomes), "--budget", "12",
        "--out", str(out), "--quiet",
        env={"PYTHONPATH": os.pathsep.join([str(blocker), os.environ.get("PYTHONPATH", "")])},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "answers through transformers" in proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["backend"].startswith(f"embedded/{TEST_MODEL}?prefill=I%20would%20prefer")
    assert metrics["n_pairs"] == 12 and metrics["mode"] == "logprob"
    assert (out / "utilities.csv").is_file()
    with sqlite3.connect(out / "responses.sqlite") as db:
        models = {m for (m,) in db.execute("SELECT DISTINCT model FROM responses")}
    assert len(models) == 1 and models.pop().endswith("&via=transformers")  # its own cache key
