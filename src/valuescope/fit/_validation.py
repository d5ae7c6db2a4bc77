"""Input checks for the pairwise fitters, done once at the public door."""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components


def check_pairs(
    pairs: np.ndarray, p: np.ndarray, n_outcomes: int, *, require_connected: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Validate an (E, 2) pair array and its observed probabilities.

    Returns the pairs as int64 and p as float64. Raises ValueError naming the problem.
    """
    if not isinstance(n_outcomes, (int, np.integer)) or n_outcomes < 2:
        raise ValueError(f"n_outcomes must be an integer >= 2, got {n_outcomes!r}")
    pairs = np.asarray(pairs)
    if pairs.ndim != 2 or pairs.shape[1] != 2:
        raise ValueError(f"pairs must have shape (E, 2), got {pairs.shape}")
    if pairs.shape[0] == 0:
        raise ValueError("pairs is empty: at least one comparison is needed")
    if not np.issubdtype(pairs.dtype, np.integer) and (
        not np.all(np.isfinite(pairs)) or not np.all(pairs == np.round(pairs))
    ):
        raise ValueError("pairs must hold integer outcome ids")
    pairs = pairs.astype(np.int64)
    if pairs.min() < 0 or pairs.max() >= n_outcomes:
        raise ValueError(
            f"pairs hold ids outside 0..{n_outcomes - 1} (min {pairs.min()}, max {pairs.max()})"
        )
    if np.any(pairs[:, 0] == pairs[:, 1]):
        bad = int(np.flatnonzero(pairs[:, 0] == pairs[:, 1])[0])
        raise ValueError(f"pair {bad} compares outcome {pairs[bad, 0]} with itself")
    p = np.asarray(p, dtype=np.float64)
    if p.shape != (pairs.shape[0],):
        raise ValueError(f"p must have shape ({pairs.shape[0]},) to match pairs, got {p.shape}")
    if not np.all(np.isfinite(p)):
        raise ValueError("p holds NaN or infinite values")
    if p.min() < 0 or p.max() > 1:
        raise ValueError(f"p must lie in [0, 1], got range [{p.min()}, {p.max()}]")
    if require_connected:
        n_comp = count_components(pairs, n_outcomes)
        if n_comp > 1:
            raise ValueError(
                f"the comparison graph splits into {n_comp} disconnected parts: "
                "utilities of different parts cannot be compared"
            )
    return pairs, p


def count_components(pairs: np.ndarray, n_outcomes: int) -> int:
    """Number of connected components of the comparison graph."""
    ones = np.ones(len(pairs))
    graph = coo_matrix((ones, (pairs[:, 0], pairs[:, 1])), shape=(n_outcomes, n_outcomes))
    n_comp, _ = connected_components(graph, directed=False)
    return int(n_comp)
