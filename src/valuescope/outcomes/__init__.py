"""Outcome sets: built-in datasets and loaders for user files."""

from valuescope.outcomes.loader import OutcomeSet, builtin_sets, load_outcomes

__all__ = ["OutcomeSet", "builtin_sets", "load_outcomes"]
