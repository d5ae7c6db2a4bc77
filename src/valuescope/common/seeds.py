"""Seeds that are the same in every process and on every platform, and orders drawn from them."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TypeVar

import numpy as np

T = TypeVar("T")


def stable_seed(*parts: object) -> int:
    """A 64-bit seed from any values, stable across processes and platforms."""
    digest = hashlib.blake2b(repr(parts).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def seeded_order(items: Sequence[T], seed: int, tag: str | None = None) -> list[T]:
    """`items` in a random order drawn from `seed` (and `tag`: each tag its own order).

    Without a tag the order is numpy's permutation under `seed` itself; with one it is
    drawn from `stable_seed("order", seed, tag)`, so the analyses that measure several
    outcome sets under one seed give each set an independent order.
    """
    rng_seed = seed if tag is None else stable_seed("order", seed, tag)
    order = np.random.default_rng(rng_seed).permutation(len(items))
    return [items[i] for i in order]
