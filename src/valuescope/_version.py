"""The package version, in a module of its own: nothing inside valuescope imports the root."""

__version__ = "0.1.0"
