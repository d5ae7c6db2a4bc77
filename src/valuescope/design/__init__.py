"""Pair designs: which comparisons to ask."""

from valuescope.design.active import batch_size, select_batch
from valuescope.design.pairs import (
    all_pair_codes,
    check_budget,
    decode,
    default_budget,
    heldout_size,
    n_all_pairs,
    pair_codes,
    random_cycle,
    sample_new_codes,
    sample_uniform_triads,
    split_heldout,
    split_start,
    triad_pairs,
)

__all__ = [
    "all_pair_codes",
    "batch_size",
    "check_budget",
    "decode",
    "default_budget",
    "heldout_size",
    "n_all_pairs",
    "pair_codes",
    "random_cycle",
    "sample_new_codes",
    "select_batch",
    "sample_uniform_triads",
    "split_heldout",
    "split_start",
    "triad_pairs",
]
