"""Reading and writing the files of a run directory."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from valuescope.errors import ValuescopeError

UTILITY_COLUMNS = ["id", "outcome", "category", "mean", "sigma", "ci_low", "ci_high"]


def prepare_out_dir(out: Path) -> Path:
    """Create the output directory and prove it is writable, or fail with one line."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".valuescope-write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ValuescopeError(f"cannot write to output directory {out}: {reason}") from None
    return out


def to_jsonable(value):
    """numpy scalars/arrays to Python; NaN and infinities to None."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        return f if math.isfinite(f) else None
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(path: Path, data: dict) -> None:
    """Write JSON atomically (a killed run never leaves half a file)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(to_jsonable(data), indent=2, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def write_csv(path: Path, frame: pd.DataFrame) -> None:
    """Write CSV atomically."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    frame.to_csv(tmp, index=False)
    os.replace(tmp, path)


def read_metrics(run_dir: Path) -> dict:
    """metrics.json of a run directory."""
    path = Path(run_dir) / "metrics.json"
    if not path.exists():
        raise ValuescopeError(f"{run_dir} is not a finished run directory (no metrics.json)")
    return json.loads(path.read_text())
