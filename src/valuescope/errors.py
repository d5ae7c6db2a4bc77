"""Errors that reach users as one clear line, never as a traceback."""


class ValuescopeError(Exception):
    """A problem with the user's input or environment, explained in one line."""


class OutcomeFileError(ValuescopeError):
    """An outcome file is missing, malformed, or holds an invalid entry."""


class UnknownModelError(ValuescopeError):
    """A model string names no registered backend."""


class BudgetError(ValuescopeError):
    """The query budget cannot buy the design asked for."""
