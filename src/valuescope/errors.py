"""Errors that reach users as one clear line, never as a traceback."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable


def did_you_mean(
    word: str, choices: Iterable[str], n: int = 3, show: Callable[[str], str] = str
) -> str:
    """ "did you mean X, Y? " naming the choices closest to `word` (difflib), or ""."""
    close = difflib.get_close_matches(word, list(choices), n=n, cutoff=0.6)
    return f"did you mean {', '.join(show(c) for c in close)}? " if close else ""


class ValuescopeError(Exception):
    """A problem with the user's input or environment, explained in one line."""


class OutcomeFileError(ValuescopeError):
    """An outcome file is missing, malformed, or holds an invalid entry."""


class UnknownModelError(ValuescopeError):
    """A model string names no registered backend."""


class BudgetError(ValuescopeError):
    """The query budget cannot buy the design asked for."""


class BackendError(ValuescopeError):
    """A model backend failed past its retry budget (server errors, rate limits, timeouts).

    `partial` holds answers that did arrive for the failed batch as
    (position in the batch, Answer) pairs, so the caller can keep them in the cache.
    """

    def __init__(self, message: str, partial: list | None = None) -> None:
        super().__init__(message)
        self.partial = partial or []


class MissingDependencyError(ValuescopeError):
    """An optional dependency of a backend is not installed; the message gives the pip line."""
