"""Model backends behind one string: `provider/model`."""

from valuescope.models.base import Answer, Backend, Mode, Query
from valuescope.models.registry import get_backend, parse_model_string, providers, register

__all__ = [
    "Answer",
    "Backend",
    "Mode",
    "Query",
    "get_backend",
    "parse_model_string",
    "providers",
    "register",
]
