"""Provenance of a run: when, with which software, on which machine, from which command.

`collect` returns the plain dict that metrics.json keeps under "provenance". Nothing in it
may fail a run: a version that cannot be read is None, a git commit that cannot be told
is None, and the command line never carries a password.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import re
import subprocess
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from valuescope.models._http import redact_url

# Distributions whose versions every run records (the fit and the tables).
CORE_LIBRARIES = ("numpy", "scipy", "pandas")
# What each provider's backend runs on (distribution names, as pip knows them). A backend
# object may also say so itself with a `library_versions() -> dict` method.
PROVIDER_LIBRARIES: dict[str, tuple[str, ...]] = {
    "openai": ("aiohttp",),
    "anthropic": ("aiohttp",),
    "llamacpp": ("llama-cpp-python",),
    "embedded": ("llama-cpp-python",),
    "hf": ("transformers", "torch", "peft"),
    "vllm": ("vllm", "torch"),
    "inspect": ("inspect-ai",),
    "sim": (),
}
ENGINE_LIBRARIES: dict[str, tuple[str, ...]] = {"ray": ("ray",)}
GIT_TIMEOUT_S = 2.0
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"]+")


def utc_iso(epoch: float) -> str:
    """A POSIX time as UTC ISO 8601 with microseconds (`2026-12-01T15:40:06.123456+00:00`)."""
    return datetime.fromtimestamp(epoch, tz=timezone.utc).isoformat(timespec="microseconds")


def parse_utc(text: str) -> float:
    """The POSIX time of a `utc_iso` string."""
    return datetime.fromisoformat(text).timestamp()


def version_of(distribution: str) -> str | None:
    """The installed version of a distribution, or None where it is not installed."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None
    except Exception:  # broken metadata must not fail a run
        return None


def valuescope_version() -> str:
    """valuescope's version from its metadata; the source tree's when not installed."""
    found = version_of("valuescope")
    if found:
        return found
    from valuescope._version import __version__

    return __version__


def git_commit(package_dir: Path | None = None) -> dict | None:
    """{"commit", "dirty"} when valuescope is imported from a git checkout, else None.

    The checkout must track this package's own files: a wheel installed into a virtual
    environment that happens to sit inside some other repository reports None, not that
    repository's commit. Each git call has a short timeout; no error escapes.
    """
    where = package_dir or Path(__file__).resolve().parent
    tracked = _git(where, "ls-files", "--error-unmatch", "--", "__init__.py")
    commit = _git(where, "rev-parse", "HEAD")
    if tracked is None or not commit:
        return None
    status = _git(where, "status", "--porcelain", "--untracked-files=no", "--", ".")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def _git(where: Path, *args: str) -> str | None:
    """Output of one git command in `where`, or None on any failure (no git, timeout)."""
    try:
        done = subprocess.run(
            ["git", "-C", str(where), *args],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def library_versions(model: str, backend: object = None, engine: str = "local") -> dict:
    """Versions of numpy, scipy, pandas and the libraries the backend and engine use."""
    names = list(CORE_LIBRARIES)
    provider = model.split("/", 1)[0]
    names += PROVIDER_LIBRARIES.get(provider, ())
    names += ENGINE_LIBRARIES.get(engine, ())
    versions = {name: version_of(name) for name in dict.fromkeys(names)}
    hook = getattr(backend, "library_versions", None)
    if callable(hook):
        with contextlib.suppress(Exception):  # a backend's own report is a courtesy
            versions.update({str(k): v for k, v in dict(hook()).items()})
    return versions


def template_sha256(template: object) -> str:
    """sha256 of what a template sends: its user and system text, labels, reasoning flag."""
    payload = json.dumps(
        [
            getattr(template, "user", None),
            getattr(template, "system", None),
            list(getattr(template, "labels", ())),
            bool(getattr(template, "reasoning", False)),
        ],
        ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def redact_command(argv: Sequence[str]) -> list[str]:
    """The command line with the password of every URL in it replaced by `***`."""
    return [_URL.sub(lambda m: redact_url(m.group(0)) or "", str(arg)) for arg in argv]


def machine() -> dict:
    """Cores, platform and Python of this machine."""
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = None
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
    }


def collect(
    *,
    started: float,
    model: str,
    backend: object = None,
    engine: str = "local",
    outcomes_sha256: str | None = None,
    templates: Sequence[object] = (),
    argv: Sequence[str] | None = None,
) -> dict:
    """The "provenance" record of a run that started at `started` (POSIX time)."""
    return {
        "time": utc_iso(started),
        "valuescope_version": valuescope_version(),
        "git": git_commit(),
        "libraries": library_versions(model, backend, engine),
        "outcomes_sha256": outcomes_sha256,
        "template_sha256": {getattr(t, "name", str(t)): template_sha256(t) for t in templates},
        "base_url": getattr(backend, "base_url", None),
        "command_line": redact_command(sys.argv if argv is None else argv),
        "machine": machine(),
    }
