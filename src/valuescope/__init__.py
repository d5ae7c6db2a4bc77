"""valuescope: measure, analyse and control the value systems of language models."""

__version__ = "0.1.0"
