"""Which pairs to ask: held-out pairs, a connected random start, random and full designs."""

from __future__ import annotations

import math

import numpy as np

from valuescope.errors import BudgetError

# Above this many outcomes, candidate pairs are sampled instead of enumerated.
ENUMERATE_LIMIT = 3000


def n_all_pairs(n: int) -> int:
    """Number of unordered pairs among n outcomes."""
    return n * (n - 1) // 2


def default_budget(n: int) -> int:
    """About 2 N log2 N training pairs, as in the reference method, capped at what exists."""
    return min(math.ceil(2 * n * math.log2(max(n, 2))), n_all_pairs(n))


def pair_codes(pairs: np.ndarray, n: int) -> np.ndarray:
    """Unique integer code per unordered pair (order-free)."""
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    lo, hi = np.minimum(pairs[:, 0], pairs[:, 1]), np.maximum(pairs[:, 0], pairs[:, 1])
    return lo * n + hi


def decode(codes: np.ndarray, n: int) -> np.ndarray:
    """Inverse of `pair_codes` (rows with a < b)."""
    codes = np.asarray(codes, dtype=np.int64)
    return np.stack([codes // n, codes % n], axis=1)


def all_pair_codes(n: int) -> np.ndarray:
    """Codes of every unordered pair."""
    a, b = np.triu_indices(n, k=1)
    return a.astype(np.int64) * n + b


def random_cycle(n: int, rng: np.random.Generator) -> np.ndarray:
    """A random Hamiltonian cycle: 2-regular and connected, n edges (n >= 3)."""
    order = rng.permutation(n)
    edges = np.stack([order, np.roll(order, -1)], axis=1)
    if n == 2:
        edges = edges[:1]
    return edges


def sample_new_codes(
    n: int, k: int, exclude: set[int] | np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """k distinct random pair codes not in `exclude` (fewer if fewer remain)."""
    excluded = np.asarray(sorted(exclude) if isinstance(exclude, set) else exclude, np.int64)
    if n <= ENUMERATE_LIMIT:
        pool = np.setdiff1d(all_pair_codes(n), excluded, assume_unique=False)
        k = min(k, len(pool))
        return np.sort(rng.choice(pool, size=k, replace=False)) if k else pool[:0]
    chosen: set[int] = set()
    excl = set(excluded.tolist())
    while len(chosen) < k:
        a = rng.integers(0, n, 2 * k)
        b = rng.integers(0, n, 2 * k)
        for code in pair_codes(np.stack([a, b], 1), n)[a != b].tolist():
            if code not in excl and code not in chosen:
                chosen.add(code)
                if len(chosen) == k:
                    break
    return np.array(sorted(chosen), dtype=np.int64)


def heldout_size(n: int, fraction: float = 0.05, max_pairs: int = 1000) -> int:
    """min(fraction of all pairs, max_pairs), at least 1 when there are spare pairs.

    From 6 outcomes on (the fewest whose pairs outside the start cycle hold a triangle) it
    is at least 3, so that the held-out set holds at least one uniform triad.
    """
    if n < 4:
        return 0
    size = max(1, min(int(fraction * n_all_pairs(n)), max_pairs))
    return max(size, 3) if n >= 6 and fraction > 0 and max_pairs >= 3 else size


def split_start(n: int, rng: np.random.Generator, heldout: int) -> tuple[np.ndarray, np.ndarray]:
    """(start edges, held-out pairs): a random cycle, then held-out pairs from the rest."""
    if n < 2:
        raise BudgetError(f"at least 2 outcomes are needed, got {n}")
    start = random_cycle(n, rng)
    held_codes = sample_new_codes(n, heldout, pair_codes(start, n), rng)
    return start, decode(held_codes, n)


def check_budget(n: int, budget: int, heldout: int) -> int:
    """Validate a training-pair budget; returns it capped at the pairs that exist."""
    need = n if n > 2 else 1
    if budget < need:
        raise BudgetError(
            f"budget {budget} pairs is smaller than the {need} needed to connect "
            f"{n} outcomes (a random cycle); use --budget {need} or more"
        )
    return min(budget, n_all_pairs(n) - heldout)


def sample_uniform_triads(
    n: int, k: int, exclude: np.ndarray, rng: np.random.Generator, max_tries: int | None = None
) -> np.ndarray:
    """Up to k uniformly drawn triads (a < b < c) whose three pairs are all new.

    A triad is kept when none of its pairs is in `exclude` or in a triad already kept, so
    the triads share no pair and each of their pairs is (up to those exclusions) a
    uniformly drawn pair. Returns fewer than k when the tries run out (tiny n).
    """
    if n < 3 or k <= 0:
        return np.zeros((0, 3), dtype=np.int64)
    used = set(np.asarray(exclude, dtype=np.int64).tolist())
    kept: list[tuple[int, int, int]] = []
    tries = max_tries if max_tries is not None else 200 + 50 * k
    while len(kept) < k and tries > 0:
        batch = min(tries, max(4 * (k - len(kept)), 16))
        tries -= batch
        for _ in range(batch):
            a, b, c = sorted(rng.choice(n, size=3, replace=False).tolist())
            codes = (a * n + b, b * n + c, a * n + c)
            if any(code in used for code in codes):
                continue
            used.update(codes)
            kept.append((a, b, c))
            if len(kept) == k:
                break
    return np.array(kept, dtype=np.int64).reshape(-1, 3)


def triad_pairs(triads: np.ndarray) -> np.ndarray:
    """The three pairs of each triad, oriented (a, b), (b, c), (c, a): rows 3t..3t+2."""
    triads = np.asarray(triads, dtype=np.int64).reshape(-1, 3)
    a, b, c = triads[:, 0], triads[:, 1], triads[:, 2]
    return np.stack([np.stack([a, b], 1), np.stack([b, c], 1), np.stack([c, a], 1)], 1).reshape(
        -1, 2
    )


def split_heldout(
    n: int, rng: np.random.Generator, heldout: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(start edges, held-out pairs, held-out triads): the held-out set as uniform triads.

    The start is a random cycle (as in `split_start`); the held-out set is heldout // 3
    uniform triads whose pairs avoid the start and each other (rows 3t..3t+2 of the
    held-out pairs are triad t, see `triad_pairs`), topped up with uniform single pairs
    to `heldout` pairs. Each pair of a uniform triad is a uniform pair, so fit quality on
    the held-out pairs is unbiased, and transitivity over the triads costs no extra query.
    """
    if n < 2:
        raise BudgetError(f"at least 2 outcomes are needed, got {n}")
    start = random_cycle(n, rng)
    start_codes = pair_codes(start, n)
    triads = sample_uniform_triads(n, heldout // 3, start_codes, rng)
    tri_pairs = triad_pairs(triads)
    exclude = np.concatenate([start_codes, pair_codes(tri_pairs, n)])
    extra = decode(sample_new_codes(n, heldout - len(tri_pairs), exclude, rng), n)
    return start, np.concatenate([tri_pairs, extra]).reshape(-1, 2), triads
