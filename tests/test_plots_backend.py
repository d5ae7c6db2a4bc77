"""Library plotting leaves matplotlib's backend and pyplot alone (a notebook's inline
plots depend on both), so no library module may call `matplotlib.use`."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "valuescope"

SCRIPT = """
import sys
from pathlib import Path
from types import SimpleNamespace
import matplotlib
before = matplotlib.get_backend()
import numpy as np
from valuescope.experiments import _stats, convergence, maximization
out = Path(sys.argv[1])
ctx = SimpleNamespace(out=out, model="sim/thurstone")
_stats.scatter_svg(out / "s.svg", [1, 2, 3], [3, 1, 2], "x", "y", "t", diagonal=True)
topk = {f"top{k}": {"value": 0.5, "ci_low": 0.4, "ci_high": 0.6} for k in maximization.TOP_K}
topk |= {f"chance{k}": 0.2 for k in maximization.TOP_K}
maximization._topk_svg(ctx, topk)
convergence._heatmap(ctx, np.eye(2), ["a", "b"])
assert len(list(out.glob("*.svg"))) == 3, list(out.iterdir())
print(before, matplotlib.get_backend(), "matplotlib.pyplot" in sys.modules)
"""


def test_plotting_keeps_the_backend_and_never_loads_pyplot(tmp_path):
    env = {**os.environ, "MPLBACKEND": "pdf"}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["pdf", "pdf", "False"]


def test_no_library_module_calls_matplotlib_use():
    calls = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "use"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id in ("matplotlib", "mpl")
            ):
                calls.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert calls == []
