"""Writing the files of a run directory, its lock and the checks before a run writes it.

Reading a run back is `valuescope.runcore.reader`'s job; the readers named here are its.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import json
import math
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from valuescope.atomic import atomic_write
from valuescope.errors import ValuescopeError
from valuescope.runcore.reader import OUTCOMES_SNAPSHOT, RUN_CONFIG, read_json, read_run_config

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

LOCK_FILE = ".valuescope.lock"


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
    file system) leaves the old file, removes the partial one, and is one clear error.
    An interrupt mid-write removes the partial file too (`valuescope.atomic`)."""
    atomic_write(path, write)


# -- who owns a run directory -------------------------------------------------------------

# What a run writes besides its answer cache. --overwrite removes exactly these (and their
# half-written .tmp files); responses.sqlite stays, as its answers are keyed by model and
# prompt and so can never be served to the wrong run.
RESULT_FILES = (
    RUN_CONFIG,
    OUTCOMES_SNAPSHOT,
    "utilities.csv",
    "pairs.csv",
    "metrics.json",
    "answers.parquet",
    "truth.csv",
    "report.html",
)
# Settings that say how answers are fetched, not which answers or which fit: they may
# differ between two invocations of the same run (and may change on --resume).
TRANSPORT_SETTINGS = frozenset(
    {
        "out",
        "concurrency",
        "timeout",
        "max_retries",
        "rate_limit",
        "batch_size",
        "engine",
        "ray_address",
        "ray_workers",
        "api_key_env",
    }
)


def outcomes_digest(texts: Sequence[str], categories: Sequence[str]) -> str:
    """sha256 of an outcome set's content: texts and categories, in order."""
    payload = json.dumps([list(texts), list(categories)], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def write_run_config(
    out: Path, settings: dict, texts: Sequence[str], categories: Sequence[str]
) -> None:
    """Record the settings, the outcomes' content hash and a snapshot of the outcomes."""
    digest = outcomes_digest(texts, categories)
    snapshot = {
        "sha256": digest,
        "outcomes": [{"text": t, "category": c} for t, c in zip(texts, categories, strict=True)],
    }
    write_json(out / OUTCOMES_SNAPSHOT, snapshot)
    record = {"outcomes_sha256": digest, "outcomes_count": len(texts)}
    write_json(out / RUN_CONFIG, {**settings, **record})


def setting_differences(old: dict, new: dict, defaults: dict) -> list[str]:
    """'name old -> new' for each setting (transport aside) where two runs differ."""
    diffs = []
    for key in sorted(set(old) | set(new)):
        if key in TRANSPORT_SETTINGS:
            continue
        before, after = old.get(key, defaults.get(key)), new.get(key, defaults.get(key))
        if before != after:
            diffs.append(f"{key.replace('_', '-')} {_show(before)} -> {_show(after)}")
    return diffs


def _show(value: object) -> str:
    return "none" if value is None else str(value)


def describe_outcome_change(out: Path, texts: Sequence[str], categories: Sequence[str]) -> str:
    """What changed between the outcomes a run began with (its snapshot) and these."""
    path = out / OUTCOMES_SNAPSHOT
    if not path.is_file():
        return "its content hash differs"
    try:
        rows = read_json(path)["outcomes"]
        old = [(str(r["text"]), str(r["category"])) for r in rows]
    except (ValuescopeError, KeyError, TypeError):
        return "its content hash differs"
    new = list(zip(texts, categories, strict=True))
    old_texts, new_texts = [t for t, _ in old], [t for t, _ in new]
    added = removed = reworded = 0
    matcher = difflib.SequenceMatcher(a=old_texts, b=new_texts, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "replace":
            common = min(i2 - i1, j2 - j1)
            reworded += common
            removed += i2 - i1 - common
            added += j2 - j1 - common
        elif tag == "delete":
            removed += i2 - i1
        elif tag == "insert":
            added += j2 - j1
    parts = [
        f"{n} outcome{'s' if n != 1 else ''} {what}"
        for n, what in ((added, "added"), (removed, "removed"), (reworded, "reworded"))
        if n
    ]
    if not parts and sorted(old_texts) == sorted(new_texts) and old_texts != new_texts:
        parts.append("outcomes reordered (ids would change)")
    if not parts:
        moved = sum(a != b for (_, a), (_, b) in zip(old, new, strict=True))
        parts.append(f"{moved} outcome{'s' if moved != 1 else ''} moved to another category")
    return ", ".join(parts)


def check_run_dir(
    out: Path, settings: dict, defaults: dict, texts: Sequence[str], categories: Sequence[str]
) -> None:
    """Refuse a directory that holds another run: other settings or other outcomes.

    `settings` are the new run's (as written to run_config.json). The same run again (a
    rerun or a resume) passes, whatever its transport settings (TRANSPORT_SETTINGS).
    """
    out = Path(out)
    remedy = "use --overwrite to replace it, or choose another --out"
    if not (out / RUN_CONFIG).exists():
        found = [name for name in RESULT_FILES if (out / name).exists()]
        if found:
            raise ValuescopeError(
                f"{out} holds files of an earlier run ({', '.join(found)}) but no "
                f"{RUN_CONFIG} saying which; use --overwrite to replace them, or choose "
                "another --out"
            )
        return
    try:
        old, record = read_run_config(out)
    except ValuescopeError as exc:
        raise ValuescopeError(f"{exc}; {remedy}") from None
    old["outcomes"] = normalise_source(old.get("outcomes"))
    diffs = setting_differences(old, settings, defaults)
    if diffs:
        shown = "; ".join(diffs[:6]) + ("; ..." if len(diffs) > 6 else "")
        raise ValuescopeError(f"{out} holds another run (settings differ: {shown}); {remedy}")
    digest = record.get("outcomes_sha256")
    if digest is not None and digest != outcomes_digest(texts, categories):
        what = describe_outcome_change(out, texts, categories)
        source = str(settings.get("outcomes"))
        is_file = Path(source).is_absolute()
        named = f"outcomes file {source}" if is_file else f"outcome set {source!r}"
        raise ValuescopeError(
            f"{named} changed since the run in {out} began ({what}); restore it, or {remedy}"
        )


def normalise_source(source: object) -> object:
    """An outcomes setting as recorded: built-in set names as they are, files absolute."""
    if not isinstance(source, str):
        return source
    from valuescope.outcomes import builtin_sets

    if source in builtin_sets():
        return source
    return str(Path(source).expanduser().resolve())


def clear_run_files(out: Path) -> list[str]:
    """Remove the result files of an earlier run in `out` (never other files); their names."""
    removed = []
    for name in RESULT_FILES:
        for path in (out / name, out / f"{name}.tmp"):
            if path.is_file() or path.is_symlink():
                try:
                    path.unlink()
                except OSError as exc:
                    raise ValuescopeError(f"cannot remove {path}: {exc.strerror or exc}") from None
                removed.append(path.name)
    return removed
