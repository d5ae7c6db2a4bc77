"""Coherence metrics: functions of observed p and predicted q (or of a fit and pairs)."""

from __future__ import annotations

from math import comb

import numpy as np

_EPS = 1e-12


def _clip(x: np.ndarray) -> np.ndarray:
    return np.clip(np.asarray(x, dtype=np.float64), _EPS, 1.0 - _EPS)


def accuracy(p: np.ndarray, q: np.ndarray) -> float:
    """Share of pairs where the predicted and observed majorities agree (ties count 1/2)."""
    p, q = np.asarray(p, float), np.asarray(q, float)
    obs, pred = np.sign(p - 0.5), np.sign(q - 0.5)
    score = np.where((obs == 0) | (pred == 0), 0.5, (obs == pred).astype(float))
    return float(score.mean())


def log_loss(p: np.ndarray, q: np.ndarray) -> float:
    """Mean soft-label cross-entropy (nats) of predictions q against observed p."""
    p, q = np.asarray(p, float), _clip(q)
    return float(np.mean(-(p * np.log(q) + (1 - p) * np.log(1 - q))))


def entropy(p: np.ndarray) -> float:
    """Mean binary entropy (nats) of the observed p: the floor of the log-loss."""
    pc = _clip(p)
    return float(np.mean(-(pc * np.log(pc) + (1 - pc) * np.log(1 - pc))))


def kl_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """Mean KL(p || q) in nats: log-loss minus the entropy of the observations."""
    return max(log_loss(p, q) - entropy(p), 0.0)


def completeness(p: np.ndarray) -> float:
    """Average confidence max(p, 1 - p): 1 when every answer is decisive."""
    p = np.asarray(p, float)
    return float(np.mean(np.maximum(p, 1 - p)))


def coin_completeness(n_answers: int) -> float:
    """Expected completeness of a fair coin asked n_answers times per pair.

    n_answers <= 0 stands for logprob mode, where a fair coin gives exactly 0.5.
    """
    if n_answers <= 0:
        return 0.5
    k = np.arange(n_answers + 1)
    probs = np.array([comb(n_answers, int(i)) for i in k], dtype=float) / 2.0**n_answers
    share = k / n_answers
    return float(np.sum(probs * np.maximum(share, 1 - share)))


def sample_triads(
    pairs: np.ndarray, n_outcomes: int, max_triads: int = 5000, seed: int = 0
) -> np.ndarray:
    """Distinct triangles (a, b, c), a < b < c, of the comparison graph, sorted.

    Every triangle when the graph has at most `max_triads`; otherwise `max_triads`
    of them drawn at random (an edge, then a common neighbour of its two ends).
    """
    pairs = np.asarray(pairs, dtype=np.int64)
    neighbours: list[set[int]] = [set() for _ in range(n_outcomes)]
    for a, b in pairs.tolist():
        neighbours[a].add(b)
        neighbours[b].add(a)
    every = _all_triangles(neighbours, max_triads)
    if every is not None:
        return np.array(sorted(every), dtype=np.int64).reshape(-1, 3)
    rng = np.random.default_rng(seed)
    found: set[tuple[int, int, int]] = set()
    attempts = 0
    while len(found) < max_triads and attempts < 4 * max_triads:
        attempts += 1
        a, b = pairs[rng.integers(len(pairs))]
        common = neighbours[a] & neighbours[b]
        if not common:
            continue
        c = sorted(common)[rng.integers(len(common))]
        found.add(tuple(sorted((int(a), int(b), int(c)))))
    return np.array(sorted(found), dtype=np.int64).reshape(-1, 3)


def _all_triangles(neighbours: list[set[int]], limit: int) -> list[tuple[int, int, int]] | None:
    """Every triangle of the graph, or None as soon as there are more than `limit`.

    Enumerating is exact and, below the limit, cheaper than the random search, which
    spends its 4 * limit tries there and can still miss triangles (21 of K30's 4,060).
    """
    found: list[tuple[int, int, int]] = []
    for a, near in enumerate(neighbours):
        for b in near:
            if b <= a:
                continue
            for c in near & neighbours[b]:
                if c > b:
                    found.append((a, b, c))
            if len(found) > limit:
                return None
    return found


def cycle_probability(
    pairs: np.ndarray, p: np.ndarray, n_outcomes: int, max_triads: int = 5000, seed: int = 0
) -> tuple[float, int]:
    """Mean probability that a sampled triad of observed preferences forms a cycle.

    For a triad with P(a>b)=x, P(b>c)=y, P(c>a)=z the cycle probability is
    xyz + (1-x)(1-y)(1-z). Returns (mean probability, number of triads); a random agent
    gives 0.25, a perfectly transitive and decisive one 0.
    """
    values = triad_cycle_values(pairs, p, n_outcomes, max_triads, seed)
    return (float(values.mean()) if len(values) else float("nan")), len(values)


def triad_cycle_values(
    pairs: np.ndarray, p: np.ndarray, n_outcomes: int, max_triads: int = 5000, seed: int = 0
) -> np.ndarray:
    """Cycle probability of each sampled triad (see `cycle_probability`)."""
    pairs = np.asarray(pairs, dtype=np.int64)
    lookup = {}
    for (a, b), pe in zip(pairs.tolist(), np.asarray(p, float).tolist()):
        lookup[(a, b)] = pe
        lookup[(b, a)] = 1.0 - pe
    triads = sample_triads(pairs, n_outcomes, max_triads, seed)
    if len(triads) == 0:
        return np.zeros(0)
    x = np.array([lookup[(a, b)] for a, b, _ in triads])
    y = np.array([lookup[(b, c)] for _, b, c in triads])
    z = np.array([lookup[(c, a)] for a, _, c in triads])
    return x * y * z + (1 - x) * (1 - y) * (1 - z)


def pair_metrics(p: np.ndarray, q: np.ndarray) -> dict[str, float]:
    """Accuracy, log-loss and KL of predictions q against observations p."""
    return {"accuracy": accuracy(p, q), "log_loss": log_loss(p, q), "kl": kl_divergence(p, q)}
