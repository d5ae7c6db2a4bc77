"""The one error type of utility control."""

from valuescope.errors import ValuescopeError


class ControlError(ValuescopeError):
    """Bad input to assemble/train/evaluate: empty assemblies, untrainable models, ..."""
