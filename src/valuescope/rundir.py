"""Reading and writing the files of a run directory."""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from valuescope.errors import ValuescopeError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

LOCK_FILE = ".valuescope.lock"
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


@contextlib.contextmanager
def run_dir_lock(out: Path) -> Iterator[None]:
    """Hold an exclusive lock on a run directory while a run writes it.

    The lock is an `flock` on `out/.valuescope.lock` (which holds the owner's pid), so
    the system releases it when the process ends, killed or not: no stale locks. A
    second run on the same directory fails at once with one line.
    """
    if fcntl is None:  # no flock on this platform: run unlocked
        yield
        return
    path = out / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ValuescopeError(f"cannot write to output directory {out}: {reason}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            owner = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            raise ValuescopeError(
                f"another run is in progress in {out} (pid {owner}); wait for it to finish "
                "or choose another --out"
            ) from None
        with contextlib.suppress(OSError):  # the pid is informative only (disk may be full)
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


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
    text = json.dumps(to_jsonable(data), indent=2, ensure_ascii=False) + "\n"
    _atomic(path, lambda tmp: tmp.write_text(text))


def write_csv(path: Path, frame: pd.DataFrame) -> None:
    """Write CSV atomically."""
    _atomic(path, lambda tmp: frame.to_csv(tmp, index=False))


def _atomic(path: Path, write: Callable[[Path], object]) -> None:
    """Write through a temporary file and rename; a failed write (disk full, read-only
    file system) leaves the old file, removes the partial one, and is one clear error."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        reason = exc.strerror or str(exc)
        raise ValuescopeError(f"cannot write {path}: {reason}") from None


def read_metrics(run_dir: Path) -> dict:
    """metrics.json of a run directory."""
    path = Path(run_dir) / "metrics.json"
    if not path.exists():
        raise ValuescopeError(f"{run_dir} is not a finished run directory (no metrics.json)")
    return json.loads(path.read_text())
