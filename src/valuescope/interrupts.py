"""Ctrl-C and SIGTERM: keep what was saved, say so in one line, exit 130 or 143.

The CLI installs `raise_terminated` for SIGTERM, so a `kill` unwinds the stack like a
Ctrl-C does (the response cache commits what arrived, engines close in `finally`).
Commands wrap their work in `interruptible`, which turns either signal into an
`Interrupted` error: the line to print (answers saved, how to resume) and the exit code.
"""

from __future__ import annotations

import contextlib
import signal
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

SIGINT_EXIT = 130  # 128 + SIGINT, what shells report for a Ctrl-C
SIGTERM_EXIT = 143  # 128 + SIGTERM


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process stands, so that cleanup runs as for Ctrl-C.

    A subclass of KeyboardInterrupt: every path that keeps answers on Ctrl-C keeps them
    on SIGTERM too; only the exit code differs.
    """


class Interrupted(Exception):
    """A command stopped by Ctrl-C or SIGTERM: the line to print and the exit code.

    An Exception (not a KeyboardInterrupt) so that typer lets it through to `main`.
    """

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


received: list[int] = []  # signals seen, so the CLI can tell a SIGTERM from a Ctrl-C


def raise_terminated(signum: int, frame: object) -> None:
    """SIGTERM handler: raise `Terminated` in the main thread."""
    received.append(signum)
    raise Terminated()


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """Inside the block SIGTERM raises `Terminated`; the old handler comes back after.

    Only the main thread may set handlers: elsewhere SIGTERM is left alone.
    """
    try:
        previous = signal.signal(signal.SIGTERM, raise_terminated)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def exit_code(exc: KeyboardInterrupt) -> int:
    """143 for a SIGTERM, 130 for a Ctrl-C."""
    return SIGTERM_EXIT if isinstance(exc, Terminated) else SIGINT_EXIT


def saved_answers(out: Path) -> int:
    """Answers stored in the response caches of `out` and of its direct sub-directories."""
    total = 0
    for path in [out / "responses.sqlite", *sorted(out.glob("*/responses.sqlite"))]:
        if not path.is_file():
            continue
        try:
            uri = f"{path.resolve().as_uri()}?mode=ro"
            with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
                total += int(db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])
        except sqlite3.Error:
            continue  # not a cache, or a corrupt one: the next run says so
    return total


def _answers_line(out: Path) -> str:
    n = saved_answers(out)
    return f"{n} answer{'' if n == 1 else 's'} saved in {out}"


@contextlib.contextmanager
def interruptible(
    out: Path,
    resume: Callable[[], str | None] | None = None,
    saved: Callable[[Path], str] = _answers_line,
) -> Iterator[None]:
    """Turn Ctrl-C / SIGTERM inside the block into `Interrupted` with one line.

    Parameters
    ----------
    out : Path
        The directory the command writes (its response caches are counted).
    resume : callable, default=None
        Gives the command that continues the work; None (or returning None): rerun the
        same command.
    saved : callable, default=count of the cached answers
        Says what was kept, e.g. "12 answers saved in runs/latest".
    """
    try:
        yield
    except KeyboardInterrupt as exc:
        line = resume() if resume else None
        how = f"resume with: {line}" if line else "rerun the same command to resume"
        message = f"interrupted: {saved(out)}; {how}"
        raise Interrupted(message, exit_code(exc)) from None
