"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Every output (report.html, tables, figures, JSON) is written to a hidden temporary file
in the same directory and renamed over the target (`os.replace`, atomic on POSIX). A
failure or an interrupt mid-write leaves the old file as it was and removes the partial
one. The temporary name ends in `.tmp`, so writers that read the format from the name
(matplotlib's `savefig`) must be given it (`format="svg"`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from valuescope.errors import ValuescopeError


def temporary_name(path: Path) -> Path:
    """The hidden sibling `path` is first written to (unique per process)."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call `write(tmp)` on a temporary sibling of `path`, then rename it to `path`.

    An OSError (disk full, read-only file system) becomes one ValuescopeError naming the
    file; any other failure (a bug, Ctrl-C) propagates unchanged. Either way the old
    file is intact and no temporary file is left behind.
    """
    path = Path(path)
    tmp = temporary_name(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        _remove(tmp)
        reason = exc.strerror or str(exc)
        raise ValuescopeError(f"cannot write {path}: {reason}") from None
    except BaseException:
        _remove(tmp)
        raise
    return path


def write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 text atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write bytes atomically."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def replace_dir(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call `write(tmp)` to fill a new temporary directory, then swap it in for `path`.

    For outputs that are directories (a saved model or adapter). The old directory stays
    whole until the new one is complete; between the two renames that swap them `path` is
    briefly absent, never half-written. On any failure the partial directory is removed
    and the old one kept; an OSError becomes one ValuescopeError naming `path`.
    """
    path = Path(path)
    tmp = temporary_name(path)
    old = path.with_name(f".{path.name}.{os.getpid()}.old")
    for leftover in (tmp, old):
        shutil.rmtree(leftover, ignore_errors=True)
    try:
        write(tmp)
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not path.exists():
            os.replace(old, path)  # put the old directory back
        if isinstance(exc, OSError):
            reason = exc.strerror or str(exc)
            raise ValuescopeError(f"cannot write {path}: {reason}") from None
        raise
    shutil.rmtree(old, ignore_errors=True)
    return path


def _remove(tmp: Path) -> None:
    with contextlib.suppress(OSError):
        tmp.unlink()
