"""Multi-step Markov processes and their Bellman statistics (plain data in, numbers out).

A process is a start state followed by steps of states; `p[k]` holds one row of
transition probabilities per state of step k (step 0 is the start) into the states of
step k + 1. The last step is terminal. The "unnatural" twin of a process keeps its
states and its transition probabilities but reassigns the non-start states to other
steps, so every transition it draws no longer makes causal sense.

Statistics, on utilities z-scored over the states of one process (an affine map, which
leaves Bellman consistency unchanged because each row of probabilities sums to 1):
- one-step residual of a non-terminal state s: z(s) - sum_s' P(s'|s) z(s');
  the process's Bellman error is the root mean square over its non-terminal states;
- fitted loss: the root mean square distance of z from the nearest Bellman-consistent
  value function V = A w (A: probabilities of ending in each terminal state; w: free
  terminal values fitted by least squares), over all states of the process.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from valuescope.common.seeds import stable_seed
from valuescope.experiments._stats import load_data
from valuescope.experiments.base import ExperimentError

MIN_STEPS = 3


@dataclass(frozen=True)
class Process:
    """A Markov process: `steps[0]` is (start,), the last step is terminal."""

    id: str
    steps: tuple[tuple[str, ...], ...]
    p: tuple[np.ndarray, ...]

    @property
    def states(self) -> list[str]:
        return [s for step in self.steps for s in step]

    def successors(self, text: str) -> list[tuple[float, str]] | None:
        """[(probability, next state)] of a state, or None for a terminal state."""
        for k, step in enumerate(self.steps[:-1]):
            if text in step:
                row = self.p[k][step.index(text)]
                return [(float(q), t) for q, t in zip(row, self.steps[k + 1]) if q > 0]
        return None

    def absorption(self) -> np.ndarray:
        """A[s, t]: probability that state s ends in terminal state t (rows follow `states`)."""
        blocks = [np.eye(len(self.steps[-1]))]
        for matrix in reversed(self.p):
            blocks.insert(0, matrix @ blocks[0])
        return np.vstack(blocks)


def _parse(item: dict) -> Process:
    pid = str(item.get("id"))
    steps = [(str(item["start"]),)] + [tuple(str(t) for t in step) for step in item["steps"]]
    if len(steps) - 1 < MIN_STEPS:
        raise ExperimentError(f"markov.yaml: {pid} has fewer than {MIN_STEPS} steps")
    if len(item["p"]) != len(steps) - 1:
        raise ExperimentError(f"markov.yaml: {pid} needs one probability block per step")
    matrices = []
    for k, block in enumerate(item["p"]):
        matrix = np.asarray(block, dtype=float)
        if matrix.shape != (len(steps[k]), len(steps[k + 1])):
            raise ExperimentError(
                f"markov.yaml: {pid} step {k + 1} probabilities have shape {matrix.shape}, "
                f"expected {(len(steps[k]), len(steps[k + 1]))}"
            )
        if (matrix < 0).any() or not np.allclose(matrix.sum(axis=1), 1):
            raise ExperimentError(f"markov.yaml: {pid} step {k + 1} rows must sum to 1")
        matrices.append(matrix)
    return Process(pid, tuple(steps), tuple(matrices))


@cache
def processes() -> tuple[Process, ...]:
    """Every process of `data/markov.yaml`; state texts are unique across the dataset."""
    found = tuple(_parse(item) for item in load_data("markov")["processes"])
    texts = [s for proc in found for s in proc.states]
    if len(set(texts)) != len(texts):
        raise ExperimentError("markov.yaml: a state text appears twice")
    return found


def valence_twin(proc: Process) -> Process:
    """The process with each state moved to another step but kept at its place in the
    step's list, which the dataset orders from the better to the worse development.

    Better states still lead mostly to better states, so utilities that only rate how
    good each situation sounds fit this twin as well as the natural process, while
    expected values of the real consequences do not. Each place is moved by a cyclic
    shift of the steps, fixed by the process id.
    """
    widths = {len(step) for step in proc.steps[1:]}
    if len(widths) != 1:
        raise ExperimentError(f"markov.yaml: {proc.id} needs steps of equal width")
    n = len(proc.steps) - 1
    rng = np.random.default_rng(stable_seed("valence-twin", proc.id))
    shifts = rng.integers(1, n, size=widths.pop())
    steps = [proc.steps[0]] + [
        tuple(proc.steps[1 + (k + int(d)) % n][i] for i, d in enumerate(shifts)) for k in range(n)
    ]
    return Process(proc.id, tuple(steps), proc.p)


def unnatural(proc: Process, tries: int = 10_000) -> Process:
    """The process with its non-start states moved to other steps (same probabilities).

    The reassignment is a random permutation, fixed by the process id, in which no state
    keeps its step: a stable control that a planted agent can also be built on.
    """
    rest = [s for step in proc.steps[1:] for s in step]
    home = [k for k, step in enumerate(proc.steps[1:]) for _ in step]
    rng = np.random.default_rng(stable_seed("unnatural", proc.id))
    for _ in range(tries):
        order = rng.permutation(len(rest))
        if all(home[i] != home[j] for i, j in enumerate(order)):
            moved = [rest[j] for j in order]
            steps, at = [proc.steps[0]], 0
            for step in proc.steps[1:]:
                steps.append(tuple(moved[at : at + len(step)]))
                at += len(step)
            return Process(proc.id, tuple(steps), proc.p)
    raise ExperimentError(f"markov.yaml: {proc.id} has no reassignment that moves every state")


@cache
def _lookup(kind: str) -> dict[str, Process]:
    twin = {"natural": lambda p: p, "unnatural": unnatural, "valence": valence_twin}[kind]
    chosen = tuple(twin(p) for p in processes())
    return {s: proc for proc in chosen for s in proc.states}


def structure(text: str, kind: str = "natural") -> list[tuple[float, str]] | None:
    """Successors of a dataset state in the natural processes or their unnatural twins."""
    proc = _lookup(kind).get(text)
    return None if proc is None else proc.successors(text)


def place(text: str) -> tuple[int, int, int] | None:
    """(step, index in the step's list, width of the step) of a dataset state, or None."""
    proc = _lookup("natural").get(text)
    if proc is None:
        return None
    k = next(k for k, step in enumerate(proc.steps) if text in step)
    return k, proc.steps[k].index(text), len(proc.steps[k])


def zscores(proc: Process, utility: dict[str, float]) -> np.ndarray:
    """The process's state utilities z-scored over its states (order of `states`)."""
    u = np.array([utility[s] for s in proc.states], dtype=float)
    sd = u.std()
    if not np.isfinite(sd) or sd == 0:
        raise ExperimentError(
            f"process {proc.id}: every state has the same utility (constant utilities; "
            "the model could not tell the states apart)"
        )
    return (u - u.mean()) / sd


def one_step(proc: Process, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(z(s), expected z of the successors) for every non-terminal state s."""
    here, ahead, at = [], [], 0
    for k, matrix in enumerate(proc.p):
        width, nxt = len(proc.steps[k]), len(proc.steps[k + 1])
        here.append(z[at : at + width])
        ahead.append(matrix @ z[at + width : at + width + nxt])
        at += width
    return np.concatenate(here), np.concatenate(ahead)


def bellman_error(proc: Process, z: np.ndarray) -> float:
    """Root mean square one-step residual over the non-terminal states."""
    here, ahead = one_step(proc, z)
    return float(np.sqrt(np.mean((here - ahead) ** 2)))


def fitted_loss(proc: Process, z: np.ndarray) -> float:
    """Root mean square distance of z from the nearest Bellman-consistent value function."""
    a = proc.absorption()
    w, *_ = np.linalg.lstsq(a, z, rcond=None)
    return float(np.sqrt(np.mean((z - a @ w) ** 2)))
