"""Errors that reach users as one clear line, never as a traceback."""


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
